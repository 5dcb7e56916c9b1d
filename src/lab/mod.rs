//! The built-in lab: endpoints in network namespaces on veth pairs, routed
//! through the host, with the datapath attached to the host side of each
//! veth. `dpdbg lab` runs it on a node; tests use the same fixture, each lab
//! with its own index (names, subnets), its own bpffs mount and clean-up in
//! Drop.

mod traffic;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

pub use traffic::{TrafficKind, TrafficResult, in_netns};

use crate::abi::{self, EndpointInfo};
use crate::datapath::{self, AttachMode, Pins, Settings};
use crate::maps::Maps;
use crate::{Error, Result, sys};

/// Where index reservations live, one file per lab in use.
const LABS_DIR: &str = "/run/dpdbg/labs";
/// The state of the lab `dpdbg lab up` leaves running.
pub const STATE_FILE: &str = "/run/dpdbg/lab.json";

/// The namespace the lab's endpoints are named in (`lab/ep1`).
pub const LAB_NAMESPACE: &str = "lab";

#[derive(Clone, Debug)]
pub struct LabOptions {
    pub endpoints: usize,
    /// None: mount a private bpffs in a temporary directory.
    pub bpffs: Option<PathBuf>,
    pub settings: Settings,
    pub attach_mode: Option<AttachMode>,
    /// Where the lab records what it makes, before making it, so a `lab up`
    /// killed half-way leaves a state file `lab down` can clean up after.
    pub state_file: Option<PathBuf>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions { endpoints: 2, bpffs: None, settings: Settings::default(), attach_mode: None, state_file: None }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabEndpoint {
    pub name: String,
    pub netns: String,
    pub host_if: String,
    pub ifindex: u32,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    pub mac: String,
    pub host_mac: String,
    pub endpoint_id: u32,
    pub identity: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    pub index: u8,
    pub bpffs: PathBuf,
    /// The bpffs was mounted by the lab (in a temp dir) and goes with it.
    pub own_mount: bool,
    /// The lab loaded the datapath and unloads it when it goes.
    pub loaded_datapath: bool,
    pub endpoints: Vec<LabEndpoint>,
    /// Value of net.ipv6.conf.all.forwarding before the lab changed it, when
    /// the kernel lacks per-interface force_forwarding.
    pub ipv6_forwarding_before: Option<String>,
}

/// A running lab; dropping it removes everything it created.
pub struct Lab {
    state: LabState,
    keep: bool,
    /// The state file this process writes as it builds (see LabOptions).
    state_file: Option<PathBuf>,
}

pub(crate) fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| Error::Command {
        command: format!("{cmd} {}", args.join(" ")),
        stderr: format!("{e} (is iproute2 installed?)"),
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{cmd} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Removes whatever a lab with this index may have left (a killed test).
fn sweep_index(index: u8) {
    if let Ok(list) = ip(&["netns", "list"]) {
        let prefix = format!("dpdbg-l{index}-");
        for line in list.lines() {
            if let Some(name) = line.split_whitespace().next().filter(|n| n.starts_with(&prefix)) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(links) = ip(&["-o", "link", "show"]) {
        let prefix = format!("dpl{index}e");
        for line in links.lines() {
            let name = line.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("")).unwrap_or("");
            if name.strip_prefix(&prefix).is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// Reserves a lab index no other running lab holds: an O_EXCL file holding
/// our pid, reclaimed when its owner is gone.
fn reserve_index() -> Result<u8> {
    fs::create_dir_all(LABS_DIR).map_err(|e| Error::io("mkdir", LABS_DIR, e))?;
    // Spread labs of one process too, so a just-released index is not reused at once.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = ((std::process::id() + 37 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 250) as u8;
    for i in 0..250u16 {
        let idx = ((start as u16 + i) % 250 + 1) as u8;
        let path = Path::new(LABS_DIR).join(idx.to_string());
        match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let _ = write!(f, "{}", std::process::id());
                sweep_index(idx);
                return Ok(idx);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<i32>().ok());
                if owner.is_some_and(|p| !pid_alive(p)) {
                    let _ = fs::remove_file(&path);
                }
            }
            Err(e) => return Err(Error::io("create", &path, e)),
        }
    }
    Err(Error::Lab(format!("no free lab index under {LABS_DIR}: remove stale files there")))
}

/// Why a state file is not one a lab wrote: it must name only what the
/// lab's own naming scheme makes, so `lab down` deletes nothing else.
fn check_state(st: &LabState) -> std::result::Result<(), String> {
    let idx = st.index;
    let numbered = |s: &str, prefix: &str| {
        s.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    for ep in &st.endpoints {
        if !numbered(&ep.host_if, &format!("dpl{idx}e")) {
            return Err(format!("interface {:?}", ep.host_if));
        }
        if !numbered(&ep.netns, &format!("dpdbg-l{idx}-ep")) {
            return Err(format!("network namespace {:?}", ep.netns));
        }
    }
    if st.own_mount {
        let ours = st.bpffs.parent() == Some(std::env::temp_dir().as_path())
            && st.bpffs.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("dpdbg-bpffs-"));
        if !ours {
            return Err(format!("a mount at {}", st.bpffs.display()));
        }
    }
    Ok(())
}

fn release_index(index: u8) {
    let _ = fs::remove_file(Path::new(LABS_DIR).join(index.to_string()));
}

/// "02:dd:…" to bytes; the lab writes these strings itself, so they are well formed.
fn parse_mac(s: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (b, part) in mac.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    mac
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| Error::io("write", path, e))
}

impl Lab {
    /// Creates the namespaces and veths, loads and attaches the datapath and
    /// fills the endpoints map. On failure nothing is left behind.
    pub fn up(opts: &LabOptions) -> Result<Lab> {
        sys::require_privileges("the lab")?;
        if opts.endpoints == 0 || opts.endpoints > 200 {
            return Err(Error::InvalidInput(format!("--endpoints {}: use 1 to 200", opts.endpoints)));
        }
        if let Some(f) = &opts.state_file
            && f.exists()
        {
            return Err(Error::Lab(format!(
                "a lab is already up ({} exists): run `dpdbg lab down` first",
                f.display()
            )));
        }
        if let Some(p) = &opts.bpffs
            && opts.settings.transport == datapath::Transport::Perf
            && Pins::new(p).is_loaded()
            && datapath::loaded_settings(p).is_ok_and(|s| s.transport != datapath::Transport::Perf)
        {
            return Err(Error::InvalidInput(format!(
                "a datapath that sends events by ring buffer is already loaded under {}: the lab would use it, not a perf one; unload it first or leave out --events perf",
                p.display()
            )));
        }
        let index = reserve_index()?;
        let mut lab = Lab {
            state: LabState {
                index,
                bpffs: PathBuf::new(),
                own_mount: false,
                loaded_datapath: false,
                endpoints: vec![],
                ipv6_forwarding_before: None,
            },
            keep: false,
            state_file: opts.state_file.clone(),
        };
        // Drop tears down whatever part was built if a step fails.
        lab.save()?;
        lab.build(opts)?;
        Ok(lab)
    }

    /// Writes the state file, when there is one: before each step, so it
    /// always names at least what exists. Written whole or not at all.
    fn save(&self) -> Result<()> {
        let Some(path) = &self.state_file else { return Ok(()) };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))?;
        }
        let json = serde_json::to_vec_pretty(&self.state).map_err(|e| Error::Lab(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, json).map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
    }

    fn build(&mut self, opts: &LabOptions) -> Result<()> {
        match &opts.bpffs {
            Some(p) => {
                sys::require_bpffs(p)?;
                self.state.bpffs = p.clone();
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("dpdbg-bpffs-")
                    .tempdir()
                    .map_err(|e| Error::io("mkdtemp", std::env::temp_dir(), e))?
                    .keep();
                self.state.bpffs = dir.clone();
                self.state.own_mount = true;
                self.save()?;
                sys::mount_bpffs(&dir)?;
            }
        }
        self.save()?;
        let idx = self.state.index;
        let force_fwd = Path::new("/proc/sys/net/ipv6/conf/all/force_forwarding").exists();
        for n in 1..=opts.endpoints as u32 {
            let ep = LabEndpoint {
                name: format!("ep{n}"),
                netns: format!("dpdbg-l{idx}-ep{n}"),
                host_if: format!("dpl{idx}e{n}"),
                ifindex: 0,
                ipv4: Ipv4Addr::new(198, 18, idx, n as u8),
                // The index reads the same in both families: lab 18 is 198.18.18.x and fd00:dbd:18::x.
                ipv6: Ipv6Addr::new(
                    0xfd00,
                    0x0dbd,
                    u16::from_str_radix(&idx.to_string(), 16).unwrap_or(0),
                    0,
                    0,
                    0,
                    0,
                    n as u16,
                ),
                mac: format!("02:dd:{idx:02x}:{n:02x}:00:01"),
                host_mac: format!("02:dd:{idx:02x}:{n:02x}:00:02"),
                endpoint_id: 100 + n,
                identity: 1000 + n,
            };
            self.state.endpoints.push(ep.clone());
            self.save()?;
            ip(&["netns", "add", &ep.netns])?;
            let (ns, hif) = (ep.netns.as_str(), ep.host_if.as_str());
            let v4 = ep.ipv4.to_string();
            let v6 = ep.ipv6.to_string();
            ip(&[
                "link",
                "add",
                hif,
                "address",
                &ep.host_mac,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "address",
                &ep.mac,
                "netns",
                ns,
            ])?;
            ip(&["link", "set", hif, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{v4}/32"), "dev", "eth0"])?;
            ip(&["-n", ns, "addr", "add", &format!("{v6}/128"), "dev", "eth0", "nodad"])?;
            // Static neighbours on both sides: no ARP or ND is needed, so the
            // datapath sees only the traffic the lab sends.
            ip(&["-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"])?;
            ip(&["-n", ns, "neigh", "add", "169.254.1.1", "lladdr", &ep.host_mac, "dev", "eth0", "nud", "permanent"])?;
            ip(&["-n", ns, "route", "add", "198.18.0.0/15", "via", "169.254.1.1", "dev", "eth0"])?;
            ip(&[
                "-n",
                ns,
                "-6",
                "neigh",
                "add",
                "fe80::1",
                "lladdr",
                &ep.host_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
            ip(&["-n", ns, "-6", "route", "add", "fd00:dbd::/32", "via", "fe80::1", "dev", "eth0"])?;
            ip(&["route", "add", &format!("{v4}/32"), "dev", hif])?;
            ip(&["-6", "route", "add", &format!("{v6}/128"), "dev", hif])?;
            ip(&["neigh", "add", &v4, "lladdr", &ep.mac, "dev", hif, "nud", "permanent"])?;
            ip(&["-6", "neigh", "add", &v6, "lladdr", &ep.mac, "dev", hif, "nud", "permanent"])?;
            write_sysctl(&format!("/proc/sys/net/ipv4/conf/{hif}/forwarding"), "1")?;
            if force_fwd {
                write_sysctl(&format!("/proc/sys/net/ipv6/conf/{hif}/force_forwarding"), "1")?;
            }
            let ifindex = sys::ifindex(hif)?;
            if let Some(last) = self.state.endpoints.last_mut() {
                last.ifindex = ifindex;
            }
        }
        if !force_fwd {
            let path = "/proc/sys/net/ipv6/conf/all/forwarding";
            self.state.ipv6_forwarding_before = fs::read_to_string(path).ok().map(|s| s.trim().to_string());
            self.save()?;
            write_sysctl(path, "1")?;
        }

        let bpffs = self.state.bpffs.clone();
        if !Pins::new(&bpffs).is_loaded() {
            self.state.loaded_datapath = true;
            self.save()?;
            datapath::load(&bpffs, &opts.settings)?;
        }
        let maps = Maps::open(&bpffs)?;
        for ep in &self.state.endpoints {
            let mac = parse_mac(&ep.mac);
            let info =
                EndpointInfo { endpoint_id: ep.endpoint_id, identity: ep.identity, ifindex: ep.ifindex, mac, flags: 0 };
            maps.endpoint_upsert(IpAddr::V4(ep.ipv4), info)?;
            maps.endpoint_upsert(IpAddr::V6(ep.ipv6), info)?;
            // Named as a pod would be (lab/ep1), its identity labelled app=ep1.
            let pod = crate::maps::PodName { namespace: LAB_NAMESPACE.into(), pod: ep.name.clone() };
            maps.endpoint_name_set(ep.endpoint_id, &pod)?;
            maps.identity_set(ep.identity, &[format!("app={}", ep.name)])?;
            // `dpdbg serve --attach 'dpl*'` may have attached it as it appeared.
            match datapath::attach(&bpffs, &ep.host_if, opts.attach_mode) {
                Ok(_) | Err(Error::AlreadyAttached { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn state(&self) -> &LabState {
        &self.state
    }

    pub fn bpffs(&self) -> &Path {
        &self.state.bpffs
    }

    pub fn endpoints(&self) -> &[LabEndpoint] {
        &self.state.endpoints
    }

    /// The n-th endpoint, 0-based.
    pub fn endpoint(&self, i: usize) -> &LabEndpoint {
        &self.state.endpoints[i]
    }

    pub fn maps(&self) -> Result<Maps> {
        Maps::open(&self.state.bpffs)
    }

    /// Turns policy enforcement on or off for an endpoint (both addresses).
    pub fn set_enforcement(&self, i: usize, ingress: bool, egress: bool) -> Result<()> {
        let ep = self.endpoint(i);
        let mut flags = 0;
        if ingress {
            flags |= abi::EP_ENFORCE_INGRESS;
        }
        if egress {
            flags |= abi::EP_ENFORCE_EGRESS;
        }
        self.maps()?.endpoint_set(ep.endpoint_id, Some(flags), None)?;
        Ok(())
    }

    /// Keeps everything running after this value is dropped (`dpdbg lab up`),
    /// writing the state where `Lab::from_state_file` finds it.
    pub fn persist(mut self, path: &Path) -> Result<LabState> {
        self.state_file = Some(path.to_path_buf());
        self.save()?;
        // No pid: the reservation must survive this process.
        let _ = fs::write(Path::new(LABS_DIR).join(self.state.index.to_string()), "persistent");
        self.keep = true;
        Ok(self.state.clone())
    }

    /// Takes over a lab another process persisted.
    pub fn from_state_file(path: &Path) -> Result<Lab> {
        let data = fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Lab(format!("no lab is up ({} does not exist): run `dpdbg lab up`", path.display()))
            } else {
                Error::io("read", path, e)
            }
        })?;
        let state: LabState = serde_json::from_slice(&data)
            .map_err(|e| Error::Lab(format!("{} is not a lab state file: {e}", path.display())))?;
        check_state(&state).map_err(|why| {
            Error::Lab(format!("{} names {why}, which no lab makes: refusing to touch it", path.display()))
        })?;
        Ok(Lab { state, keep: true, state_file: Some(path.to_path_buf()) })
    }

    /// Removes everything; the state file too when given, unless something
    /// could not be removed (then the file still says what is left).
    pub fn down(mut self, state_file: Option<&Path>) -> Result<()> {
        self.keep = false;
        self.state_file = state_file.map(Path::to_path_buf);
        let errors = self.teardown();
        self.keep = true; // already torn down: Drop has nothing left to do
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Lab(format!("clean-up was incomplete: {}", errors.join("; "))))
        }
    }

    fn teardown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let bpffs = self.state.bpffs.clone();
        if !bpffs.as_os_str().is_empty() && sys::is_bpffs(&bpffs) {
            for ep in &self.state.endpoints {
                match datapath::detach(&bpffs, &ep.host_if) {
                    Ok(()) | Err(Error::NotAttached { .. }) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
            if self.state.loaded_datapath
                && let Err(e) = datapath::unload(&bpffs)
                && !matches!(e, Error::NotLoaded { .. })
            {
                errors.push(e.to_string());
            }
        }
        for ep in self.state.endpoints.drain(..) {
            // The namespace's veth would go with it, but only once the
            // kernel's asynchronous netns clean-up runs: delete it now so the
            // name is free for the next lab at once. Either may not exist:
            // a lab up killed half-way recorded it before making it.
            if sys::ifindex(&ep.host_if).is_ok()
                && let Err(e) = ip(&["link", "del", &ep.host_if])
            {
                errors.push(e.to_string());
            }
            if Path::new("/run/netns").join(&ep.netns).exists()
                && let Err(e) = ip(&["netns", "del", &ep.netns])
            {
                errors.push(e.to_string());
            }
        }
        if let Some(v) = self.state.ipv6_forwarding_before.take() {
            let _ = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", &v);
        }
        if self.state.own_mount {
            if sys::is_bpffs(&bpffs)
                && let Err(e) = sys::unmount(&bpffs)
            {
                errors.push(e.to_string());
            }
            let _ = fs::remove_dir(&bpffs);
            self.state.own_mount = false;
        }
        if errors.is_empty() {
            release_index(self.state.index);
            if let Some(f) = &self.state_file {
                let _ = fs::remove_file(f);
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.keep {
            let errors = self.teardown();
            if !errors.is_empty() && !std::thread::panicking() {
                // Drop cannot return an error; a test would rather see it than not.
                eprintln!("lab {} clean-up: {}", self.state.index, errors.join("; "));
            }
        }
    }
}
