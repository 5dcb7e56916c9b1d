use std::fs;
use std::path::{Path, PathBuf};

use super::{AttachMode, Hook, PROG_FROM_ENDPOINT};
use crate::{Error, Result};

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
