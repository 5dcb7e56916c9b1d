//! The pin layout under `<bpffs>/dpdbg/`: `maps/<name>`, `progs/<name>`,
//! `links/<ifname>-<ingress|egress>`, and `loading` while a load runs. A leaf
//! of the crate, beside the syscall layer: `datapath` and `maps` both use it,
//! neither imports the other.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aya::programs::TcAttachType;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The maps the object defines, each pinned as `maps/<name>`.
pub const MAPS: &[&str] = &[
    "endpoints",
    "ipcache",
    "policy",
    "ct4",
    "ct6",
    "frags",
    "metrics",
    "events",
    "events_perf",
    TRACE_MAP,
    "identities",
    "endpoint_names",
];
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

/// Where events go, chosen at load time: which of the pinned `events`
/// (ring buffer) and `events_perf` (perf event array) the datapath writes
/// and a reader opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Ringbuf,
    Perf,
}

impl FromStr for Transport {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ringbuf" => Ok(Transport::Ringbuf),
            "perf" => Ok(Transport::Perf),
            _ => Err(Error::InvalidInput(format!("unknown event transport {s:?}: use ringbuf or perf"))),
        }
    }
}

/// How a program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Where the datapath under one bpffs stands, read from its pins alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinState {
    /// No pin of ours (empty directories may be left).
    NotLoaded,
    /// Every pin a load makes, and no load left unfinished.
    Loaded,
    /// Anything between: a load that did not finish, or pins removed since.
    Partial(Partial),
}

/// What a partial datapath has and lacks, as pins relative to the pin
/// directory (`maps/ct4`, `progs/trace_from_ep`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    /// The `loading` marker is there: a load began and did not finish
    /// (killed, or still running).
    pub load_unfinished: bool,
    pub present: Vec<String>,
    pub missing: Vec<String>,
}

impl Partial {
    /// What is wrong, in a few words, for messages.
    pub fn describe(&self) -> String {
        let missing = if self.missing.is_empty() {
            "no pin missing".to_string()
        } else {
            format!("missing: {}", self.missing.join(", "))
        };
        if self.load_unfinished { format!("a load did not finish; {missing}") } else { missing }
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

    /// Made before a load's first pin and removed after its last, so that a
    /// killed load is told apart from a complete one even when every pin got
    /// made. A directory: bpffs holds no regular files.
    pub fn loading_marker(&self) -> PathBuf {
        self.root.join("loading")
    }

    /// Every pin a complete load makes, relative to the root.
    pub fn required() -> Vec<String> {
        let maps = MAPS.iter().chain([&CONFIG_MAP, &SETTINGS_MAP]).map(|m| format!("maps/{m}"));
        let progs =
            [PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, PROG_TRACE_FROM, PROG_TRACE_TO].map(|p| format!("progs/{p}"));
        maps.chain(progs).collect()
    }

    /// Reads where the datapath stands. Any pin may be missing: this is what
    /// tells a reader, and the next load, that something is.
    pub fn state(&self) -> PinState {
        let unfinished = self.loading_marker().exists();
        let (present, missing): (Vec<String>, Vec<String>) =
            Pins::required().into_iter().partition(|p| self.root.join(p).exists());
        if missing.is_empty() && !unfinished {
            PinState::Loaded
        } else if present.is_empty() && !unfinished && self.attachments().is_empty() {
            PinState::NotLoaded
        } else {
            PinState::Partial(Partial { load_unfinished: unfinished, present, missing })
        }
    }

    /// Only a complete datapath counts: a partial one has lost what some
    /// reader needs, and it is never clear which.
    pub fn is_loaded(&self) -> bool {
        self.state() == PinState::Loaded
    }

    /// Ok when the datapath is complete; else the error that says what to run.
    pub fn require_loaded(&self) -> Result<()> {
        match self.state() {
            PinState::Loaded => Ok(()),
            PinState::NotLoaded => Err(Error::NotLoaded { dir: self.root.clone() }),
            PinState::Partial(p) => Err(Error::Incomplete { dir: self.root.clone(), partial: Box::new(p) }),
        }
    }

    /// The directories of a new load, the `loading` marker first.
    pub fn create_dirs(&self) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| Error::io("mkdir", &self.root, e))?;
        for p in [self.loading_marker(), self.root.join("maps"), self.root.join("progs"), self.root.join("links")] {
            match fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("mkdir", &p, e)),
            }
        }
        Ok(())
    }

    /// Marks the load complete: from here on the datapath counts as loaded.
    pub fn finish_load(&self) -> Result<()> {
        let m = self.loading_marker();
        fs::remove_dir(&m).map_err(|e| Error::io("rmdir", &m, e))
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
        // Last: a cleanup killed half-way still reads as an unfinished load.
        let marker = self.loading_marker();
        if marker.exists() {
            fs::remove_dir(&marker).map_err(|e| Error::io("rmdir", &marker, e))?;
        }
        if self.root.exists() {
            fs::remove_dir(&self.root).map_err(|e| Error::io("rmdir", &self.root, e))?;
        }
        Ok(n)
    }
}
