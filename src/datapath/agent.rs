//! The node agent's interface manager: the datapath attached to every
//! interface whose name matches a pattern, those that exist and those that
//! appear later, told by the kernel's netlink link notifications
//! (RTM_NEWLINK, RTM_DELLINK) rather than found by polling. Interfaces that
//! vanish have their pins cleared; one that refuses attachment is tried
//! again at its next change (a link going up, say), never fatal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use serde::{Deserialize, Serialize};

use super::{AttachMode, Hook, Pins};
use crate::error::{Error, Result};

/// Where managers say what they manage, one file per bpffs.
pub const AGENTS_DIR: &str = "/run/dpdbg/agents";

/// The multicast group of link notifications (RTNLGRP_LINK).
const RTNLGRP_LINK: u32 = 1;

/// How often the manager looks up from the socket: to stop when told, and
/// to see a datapath loaded since (attachments wait for one).
const TICK: Duration = Duration::from_millis(500);

/// Whether `name` matches a shell-style `pattern` (`*` any run, `?` one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((b'?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Checks a pattern: an interface name (the kernel's rules) with `*` and `?` allowed.
pub fn check_pattern(pattern: &str) -> Result<()> {
    let plain: String = pattern.chars().map(|c| if c == '*' || c == '?' { 'x' } else { c }).collect();
    if pattern.is_empty() {
        return Err(Error::InvalidInput("an empty --attach pattern matches no interface".into()));
    }
    crate::sys::check_ifname(&plain[..plain.len().min(15)])
        .map_err(|e| Error::InvalidInput(format!("--attach {pattern:?}: {e}")))
}

/// What the manager did, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    Attached {
        ifname: String,
        mode: AttachMode,
    },
    /// Attached before the manager started (by it, or by hand): kept.
    Adopted {
        ifname: String,
    },
    /// Gone from the kernel: its pins were cleared.
    Removed {
        ifname: String,
    },
    /// The datapath refused this interface: tried again at its next change.
    Failed {
        ifname: String,
        error: String,
    },
    /// No datapath is loaded: attachments wait for one.
    Waiting,
}

/// What the manager manages now, written beside the server's socket for
/// `datapath status` to show.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Managed {
    pub pid: u32,
    pub bpffs: PathBuf,
    pub patterns: Vec<String>,
    /// Interfaces attached by (or adopted by) the manager.
    pub attached: Vec<String>,
    /// Interfaces that match but refused attachment, with the reason.
    pub failed: BTreeMap<String, String>,
}

impl Managed {
    /// The state file of the manager of `bpffs`: under /run/dpdbg/agents/,
    /// named after the bpffs path (bpffs itself holds no regular files).
    pub fn path_for(bpffs: &Path) -> PathBuf {
        let name: Vec<String> = bpffs
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let name = if name.is_empty() { "root".to_string() } else { name.join("-") };
        PathBuf::from(AGENTS_DIR).join(format!("{name}.json"))
    }

    /// The state a live manager of `bpffs` wrote at `path`, if any.
    pub fn read(path: &Path, bpffs: &Path) -> Option<Managed> {
        let m: Managed = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let alive = Path::new(&format!("/proc/{}", m.pid)).exists();
        (alive && m.bpffs == bpffs).then_some(m)
    }
}

/// The interface manager of one bpffs.
pub struct Agent {
    bpffs: PathBuf,
    patterns: Vec<String>,
    mode: Option<AttachMode>,
    attached: BTreeSet<String>,
    failed: BTreeMap<String, String>,
    state_file: Option<PathBuf>,
}

impl Agent {
    pub fn new(bpffs: &Path, patterns: Vec<String>, mode: Option<AttachMode>) -> Result<Agent> {
        for p in &patterns {
            check_pattern(p)?;
        }
        Ok(Agent {
            bpffs: bpffs.to_path_buf(),
            patterns,
            mode,
            attached: BTreeSet::new(),
            failed: BTreeMap::new(),
            state_file: None,
        })
    }

    /// Keeps what is managed in `path` (see `Managed`), removed when the manager stops.
    pub fn with_state_file(mut self, path: PathBuf) -> Agent {
        self.state_file = Some(path);
        self
    }

    fn matches(&self, ifname: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, ifname))
    }

    fn save(&self) {
        if let Some(path) = &self.state_file {
            let m = Managed {
                pid: std::process::id(),
                bpffs: self.bpffs.clone(),
                patterns: self.patterns.clone(),
                attached: self.attached.iter().cloned().collect(),
                failed: self.failed.clone(),
            };
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let tmp = path.with_extension("json.tmp");
            if let Ok(b) = serde_json::to_vec_pretty(&m)
                && std::fs::write(&tmp, b).is_ok()
            {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    }

    /// Attaches `ifname` when it matches, exists and is not attached yet.
    fn consider(&mut self, ifname: &str, log: &mut impl FnMut(AgentEvent)) {
        if !self.matches(ifname) || self.attached.contains(ifname) {
            return;
        }
        let pins = Pins::new(&self.bpffs);
        if !pins.is_loaded() {
            return;
        }
        if Hook::BOTH.iter().all(|h| pins.attachment(ifname, *h).is_some()) {
            self.attached.insert(ifname.to_string());
            self.failed.remove(ifname);
            log(AgentEvent::Adopted { ifname: ifname.to_string() });
            return;
        }
        match super::attach_all(&self.bpffs, &[ifname], self.mode) {
            Ok(done) => {
                let mode = done.first().map_or(AttachMode::Tcx, |a| a.mode);
                self.attached.insert(ifname.to_string());
                self.failed.remove(ifname);
                log(AgentEvent::Attached { ifname: ifname.to_string(), mode });
            }
            // Gone again before we got to it: its DELLINK will come.
            Err(Error::NoSuchInterface { .. }) => {}
            Err(e) => {
                let error = e.to_string();
                if self.failed.get(ifname) != Some(&error) {
                    log(AgentEvent::Failed { ifname: ifname.to_string(), error: error.clone() });
                }
                self.failed.insert(ifname.to_string(), error);
            }
        }
    }

    fn removed(&mut self, ifname: &str, log: &mut impl FnMut(AgentEvent)) {
        let was = self.attached.remove(ifname);
        self.failed.remove(ifname);
        if was {
            // The kernel took the hooks with the interface; the pins stay
            // until detach clears them.
            let _ = super::detach_all(&self.bpffs, &[ifname]);
            log(AgentEvent::Removed { ifname: ifname.to_string() });
        }
    }

    /// Every interface on the node now.
    fn existing() -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn scan(&mut self, log: &mut impl FnMut(AgentEvent)) {
        for ifname in Self::existing() {
            self.consider(&ifname, log);
        }
    }

    /// Manages interfaces until `stop` is set: attaches to those that exist
    /// and match, then follows the kernel's link notifications.
    pub fn run(&mut self, stop: &AtomicBool, mut log: impl FnMut(AgentEvent)) -> Result<()> {
        let io =
            |call: &'static str| move |e: std::io::Error| Error::Io { call, path: PathBuf::from("netlink"), source: e };
        // Subscribed before the first scan: a link made in between is told, not missed.
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io("socket(NETLINK_ROUTE)"))?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(io("bind(netlink)"))?;
        sock.add_membership(RTNLGRP_LINK).map_err(io("NETLINK_ADD_MEMBERSHIP"))?;
        set_recv_timeout(&sock, TICK);
        let mut loaded = Pins::new(&self.bpffs).is_loaded();
        if !loaded {
            log(AgentEvent::Waiting);
        }
        self.scan(&mut log);
        self.save();
        let mut buf = vec![0u8; 1 << 16];
        while !stop.load(Ordering::Relaxed) {
            let n = match sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => 0,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                // ENOBUFS: notifications were lost; what exists now is the truth.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.rescan(&mut log);
                    self.save();
                    continue;
                }
                Err(e) => return Err(io("recv")(e)),
            };
            let now = Pins::new(&self.bpffs).is_loaded();
            if now != loaded {
                loaded = now;
                if now {
                    // A new datapath has none of the old attachments.
                    self.attached.clear();
                    self.failed.clear();
                    self.scan(&mut log);
                } else {
                    self.attached.clear();
                    log(AgentEvent::Waiting);
                }
                self.save();
            }
            let mut at = 0;
            while at < n {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..n]) else { break };
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                        if let Some(name) = link_name(&l) {
                            self.consider(&name, &mut log);
                        }
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                        if let Some(name) = link_name(&l) {
                            self.removed(&name, &mut log);
                        }
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
            if n > 0 {
                self.save();
            }
        }
        if let Some(p) = &self.state_file {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }

    /// After lost notifications: interfaces gone are removed, new ones considered.
    fn rescan(&mut self, log: &mut impl FnMut(AgentEvent)) {
        let now: BTreeSet<String> = Self::existing().into_iter().collect();
        let gone: Vec<String> = self.attached.iter().filter(|i| !now.contains(*i)).cloned().collect();
        for i in gone {
            self.removed(&i, log);
        }
        self.scan(log);
    }
}

fn link_name(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn set_recv_timeout(sock: &Socket, t: Duration) {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval { tv_sec: t.as_secs() as libc::time_t, tv_usec: t.subsec_micros() as libc::suseconds_t };
    // SAFETY: setsockopt with a valid fd and a timeval; failure leaves a blocking socket.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_as_a_shell_matches_them() {
        for (p, n, yes) in [
            ("lxc*", "lxc12ab", true),
            ("lxc*", "lxc", true),
            ("lxc*", "eth0", false),
            ("dpl*", "dpl0h1", true),
            ("veth?", "veth1", true),
            ("veth?", "veth12", false),
            ("*", "anything", true),
            ("eth0", "eth0", true),
            ("eth0", "eth01", false),
        ] {
            assert_eq!(glob_match(p, n), yes, "{p} {n}");
        }
        assert!(check_pattern("lxc*").is_ok());
        assert!(check_pattern("").is_err());
        assert!(check_pattern("a/b*").is_err());
    }
}
