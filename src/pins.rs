//! The pin layout under `<bpffs>/dpdbg/`: `maps/<name>`, `progs/<name>`,
//! `links/<ifname>-<ingress|egress>`. A leaf of the crate, beside the
//! syscall layer: `datapath` and `maps` both use it, neither imports the other.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aya::programs::TcAttachType;
use serde::Serialize;

use crate::{Error, Result};

/// The maps the object defines, each pinned as `maps/<name>`.
pub const MAPS: &[&str] =
    &["endpoints", "ipcache", "policy", "ct4", "ct6", "frags", "metrics", "events", "events_perf", TRACE_MAP];
/// The one-slot map the dry-run programs of `dpdbg trace` record into.
pub const TRACE_MAP: &str = "trace_result";
/// The object's `.rodata` (the `cfg` load-time settings) is pinned under this
/// name so `status` can show what the loaded datapath was configured with.
pub const CONFIG_MAP: &str = "config";
/// The object's `.data` (the `rt` run-time settings) is pinned under this
/// name; `datapath config` changes it while the datapath runs.
pub const SETTINGS_MAP: &str = "settings";
/// The programs, each pinned as `progs/<name>`.
pub const PROG_FROM_ENDPOINT: &str = "from_endpoint";
pub const PROG_TO_ENDPOINT: &str = "to_endpoint";
/// The dry-run pair `dpdbg trace` runs (never attached): the same handler,
/// recording into the trace map instead of writing to the live maps.
pub const PROG_TRACE_FROM: &str = "trace_from_ep";
pub const PROG_TRACE_TO: &str = "trace_to_ep";

/// How a program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// A TCX link (kernel 6.6+), pinned under links/.
    Tcx,
    /// A clsact qdisc filter (older kernels), remembered by a marker under links/.
    Clsact,
}

impl FromStr for AttachMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tcx" => Ok(AttachMode::Tcx),
            "clsact" | "tc" => Ok(AttachMode::Clsact),
            _ => Err(Error::InvalidInput(format!("unknown attach mode {s:?}: use tcx or clsact"))),
        }
    }
}

/// The TC hook a program sits on, named as tc names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Ingress,
    Egress,
}

impl Hook {
    pub const BOTH: [Hook; 2] = [Hook::Ingress, Hook::Egress];

    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Ingress => "ingress",
            Hook::Egress => "egress",
        }
    }

    /// The host veth's tc ingress sees what the endpoint sends.
    pub fn program(self) -> &'static str {
        match self {
            Hook::Ingress => PROG_FROM_ENDPOINT,
            Hook::Egress => PROG_TO_ENDPOINT,
        }
    }

    pub(crate) fn tc(self) -> TcAttachType {
        match self {
            Hook::Ingress => TcAttachType::Ingress,
            Hook::Egress => TcAttachType::Egress,
        }
    }
}

/// The pin layout under `<bpffs>/dpdbg/`.
#[derive(Clone, Debug)]
pub struct Pins {
    root: PathBuf,
}

// bpffs refuses names with a dot in them.
const CLSACT_SUFFIX: &str = "-clsact";

impl Pins {
    pub fn new(bpffs: &Path) -> Pins {
        Pins { root: bpffs.join("dpdbg") }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.root.join("maps").join(name)
    }

    pub fn prog(&self, name: &str) -> PathBuf {
        self.root.join("progs").join(name)
    }

    pub fn link(&self, ifname: &str, hook: Hook) -> PathBuf {
        self.root.join("links").join(format!("{ifname}-{}", hook.as_str()))
    }

    /// bpffs holds no regular files, so a clsact attachment (which has no
    /// link object to pin) is remembered by an empty directory.
    pub fn clsact_marker(&self, ifname: &str, hook: Hook) -> PathBuf {
        self.root.join("links").join(format!("{ifname}-{}{CLSACT_SUFFIX}", hook.as_str()))
    }

    pub fn is_loaded(&self) -> bool {
        self.prog(PROG_FROM_ENDPOINT).exists()
    }

    pub fn create_dirs(&self) -> Result<()> {
        for d in ["maps", "progs", "links"] {
            let p = self.root.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::io("mkdir", &p, e))?;
        }
        Ok(())
    }

    /// The attachment recorded for this interface and hook, if any.
    pub fn attachment(&self, ifname: &str, hook: Hook) -> Option<(AttachMode, PathBuf)> {
        let link = self.link(ifname, hook);
        if link.exists() {
            return Some((AttachMode::Tcx, link));
        }
        let marker = self.clsact_marker(ifname, hook);
        marker.exists().then_some((AttachMode::Clsact, marker))
    }

    /// Every recorded attachment: (interface, hook, mode, pin path), sorted.
    pub fn attachments(&self) -> Vec<(String, Hook, AttachMode, PathBuf)> {
        let Ok(rd) = fs::read_dir(self.root.join("links")) else {
            return vec![];
        };
        let mut out: Vec<_> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (base, mode) = match name.strip_suffix(CLSACT_SUFFIX) {
                    Some(b) => (b.to_string(), AttachMode::Clsact),
                    None => (name.clone(), AttachMode::Tcx),
                };
                let (ifname, hook) = if let Some(i) = base.strip_suffix("-ingress") {
                    (i.to_string(), Hook::Ingress)
                } else if let Some(i) = base.strip_suffix("-egress") {
                    (i.to_string(), Hook::Egress)
                } else {
                    return None;
                };
                Some((ifname, hook, mode, e.path()))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        out
    }

    /// Removes every pin and directory under the root; returns how many pins went.
    pub fn remove_all(&self) -> Result<usize> {
        let mut n = 0;
        for d in ["links", "progs", "maps"] {
            let dir = self.root.join(d);
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    let r = if p.is_dir() { fs::remove_dir(&p) } else { fs::remove_file(&p) };
                    r.map_err(|e| Error::io("remove", &p, e))?;
                    n += 1;
                }
            }
            if dir.exists() {
                fs::remove_dir(&dir).map_err(|e| Error::io("rmdir", &dir, e))?;
            }
        }
        if self.root.exists() {
            fs::remove_dir(&self.root).map_err(|e| Error::io("rmdir", &self.root, e))?;
        }
        Ok(n)
    }
}
