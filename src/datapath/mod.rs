//! Load, attach, detach, unload and describe the datapath. Everything lives
//! pinned under `<bpffs>/dpdbg/` so it outlives the process that put it there:
//! `maps/<name>`, `progs/<name>`, `links/<ifname>-<ingress|egress>`. A load
//! marks itself unfinished (`loading`) before its first pin and clears the
//! mark after its last, so "loaded" always means complete; a load that finds
//! a partial datapath left by a killed one cleans it up and loads again.

pub mod agent;
mod clock;
mod status;

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aya::EbpfLoader;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{self, TcAttachOptions};
use aya::programs::{LinkOrder, ProgramError, SchedClassifier};
use serde::{Deserialize, Serialize};

pub use crate::pins::{
    AttachMode, CONFIG_MAP, Hook, MAPS, PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, PROG_TRACE_FROM, PROG_TRACE_TO, Partial,
    PinState, Pins, SETTINGS_MAP, TRACE_MAP, Transport,
};
pub use status::{
    AttachmentStatus, LoadState, MapStatus, OBJECT_SOURCE, ObjectInfo, ProgramStatus, Runtime, Status,
    clock_calibration, clock_source, loaded_settings, runtime, set_runtime, status, status_brief,
};

use crate::abi::{self, DpConfig, DpRuntime};
use crate::{Error, Result, sys};

/// How many trace events the datapath emits (drops and verdicts are always sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// A trace event for every forwarded packet.
    None,
    /// Trace new connections and changes of TCP flags.
    #[default]
    Medium,
    /// No trace events.
    Maximum,
}

impl FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Aggregation::None),
            "medium" => Ok(Aggregation::Medium),
            "maximum" | "max" => Ok(Aggregation::Maximum),
            _ => Err(Error::InvalidInput(format!("unknown aggregation level {s:?}: use none, medium or maximum"))),
        }
    }
}

/// Load-time settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    pub transport: Transport,
    /// Packet bytes copied into each event, 0..=`abi::SNAPLEN_MAX` (9216).
    pub snaplen: u32,
    pub aggregation: Aggregation,
    pub debug: bool,
    /// Overrides of map sizes (entries), by map name.
    #[serde(skip)]
    pub max_entries: Vec<(String, u32)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            transport: Transport::Ringbuf,
            snaplen: 128,
            aggregation: Aggregation::Medium,
            debug: false,
            max_entries: vec![],
        }
    }
}

impl Settings {
    pub fn to_config(&self) -> DpConfig {
        DpConfig {
            event_transport: match self.transport {
                Transport::Ringbuf => abi::TRANSPORT_RINGBUF,
                Transport::Perf => abi::TRANSPORT_PERF,
            },
            snaplen: self.snaplen,
        }
    }

    pub fn runtime(&self) -> Runtime {
        Runtime { aggregation: self.aggregation, debug: self.debug }
    }

    pub fn from_parts(c: &DpConfig, r: &Runtime) -> Settings {
        Settings {
            transport: if c.event_transport == abi::TRANSPORT_PERF { Transport::Perf } else { Transport::Ringbuf },
            snaplen: c.snaplen,
            aggregation: r.aggregation,
            debug: r.debug,
            max_entries: vec![],
        }
    }
}

impl Runtime {
    pub fn to_abi(&self) -> DpRuntime {
        DpRuntime {
            aggregation: match self.aggregation {
                Aggregation::None => abi::AGG_NONE,
                Aggregation::Medium => abi::AGG_MEDIUM,
                Aggregation::Maximum => abi::AGG_MAX,
            },
            debug: self.debug as u32,
        }
    }

    pub fn from_abi(r: &DpRuntime) -> Runtime {
        Runtime {
            aggregation: match r.aggregation {
                abi::AGG_NONE => Aggregation::None,
                abi::AGG_MAX => Aggregation::Maximum,
                _ => Aggregation::Medium,
            },
            debug: r.debug != 0,
        }
    }
}

/// What `load` did.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    pub pin_dir: PathBuf,
    pub programs: Vec<ProgramStatus>,
    pub settings: Settings,
    /// The partial datapath this load found and removed before loading
    /// (a load killed part-way, or pins removed since), when there was one.
    pub cleaned_up: Option<Partial>,
    /// Kernel drops (skb:kfree_skb): attached with the datapath, or why not.
    pub kernel_drops: Option<crate::kdrop::KernelDrops>,
}

fn verifier_error(program: &str, e: ProgramError) -> Error {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            Error::VerifierRejected { program: program.to_string(), reason: io_error.to_string(), log_tail: tail }
        }
        other => Error::bpf(format!("loading program {program}"), other),
    }
}

/// Whether the kernel takes `n` entries for map `name` as they are: a size
/// it would round or refuse is refused here, saying what would work.
pub fn check_map_size(name: &str, n: u32) -> Result<()> {
    if !MAPS.contains(&name) {
        return Err(Error::InvalidInput(format!("no map named {name:?} (maps: {})", MAPS.join(", "))));
    }
    if n == 0 {
        return Err(Error::InvalidInput(format!("map {name}: max entries must be at least 1")));
    }
    match name {
        "events" => {
            // The ring's size in bytes: a power of two, at least a page.
            let page = sys::page_size() as u32;
            if !n.is_power_of_two() || n < page {
                let next = n.max(page).checked_next_power_of_two().unwrap_or(1 << 31);
                return Err(Error::InvalidInput(format!(
                    "map events is a ring buffer of {n} bytes: its size must be a power of two of at least one page ({page}); try {next}"
                )));
            }
        }
        "events_perf" => {
            return Err(Error::InvalidInput(
                "map events_perf has one slot per CPU, sized by the loader: it takes no --map-size".into(),
            ));
        }
        "metrics" => {
            return Err(Error::InvalidInput(format!(
                "map metrics is indexed by reason and direction: its {} slots are fixed",
                abi::METRICS_MAX
            )));
        }
        TRACE_MAP => {
            return Err(Error::InvalidInput(format!("map {TRACE_MAP} is one slot for dpdbg trace: its size is fixed")));
        }
        _ => {}
    }
    Ok(())
}

fn check_settings(s: &Settings) -> Result<()> {
    if s.snaplen > abi::SNAPLEN_MAX {
        return Err(Error::InvalidInput(format!(
            "snaplen {} is too large: at most {} (a jumbo frame); give --snaplen {} or less",
            s.snaplen,
            abi::SNAPLEN_MAX,
            abi::SNAPLEN_MAX
        )));
    }
    for (name, n) in &s.max_entries {
        check_map_size(name, *n)?;
    }
    Ok(())
}

/// How long a change waits for another process's change to finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serialises load, attach, detach and unload under one bpffs: an flock on
/// the bpffs directory itself (the pin directory may not exist yet), so two
/// loads cannot both half-succeed and roll each other back.
fn lock(bpffs: &Path) -> Result<sys::DirLock> {
    sys::lock_dir(bpffs, LOCK_WAIT).map_err(|e| match e {
        sys::LockError::Busy { holder } => Error::DatapathBusy { dir: bpffs.to_path_buf(), holder },
        sys::LockError::Io(e) => Error::io("flock", bpffs, e),
    })
}

/// Loads the built-in datapath object and pins its maps and programs.
pub fn load(bpffs: &Path, settings: &Settings) -> Result<LoadReport> {
    load_object(bpffs, settings, crate::DATAPATH_OBJECT)
}

/// Loads `object` (a datapath build with the same maps and programs).
pub fn load_object(bpffs: &Path, settings: &Settings, object: &[u8]) -> Result<LoadReport> {
    sys::require_privileges("loading the datapath")?;
    sys::require_bpffs(bpffs)?;
    check_settings(settings)?;
    let _lock = lock(bpffs)?;
    let pins = Pins::new(bpffs);
    if settings.transport == Transport::Ringbuf && !sys::features().ringbuf {
        return Err(Error::InvalidInput("this kernel has no BPF ring buffer (5.8+): load with --events perf".into()));
    }
    // Under the lock no other load runs: a partial datapath is one a killed
    // process left (its flock went with it), or pins removed since.
    let cleaned_up = match pins.state() {
        PinState::Loaded => return Err(Error::AlreadyLoaded { dir: pins.root().to_path_buf() }),
        PinState::NotLoaded => None,
        PinState::Partial(partial) => {
            let mut interfaces: Vec<String> = pins.attachments().into_iter().map(|a| a.0).collect();
            interfaces.dedup();
            if !interfaces.is_empty() {
                // Its programs still run on those interfaces: removing them
                // is the operator's call, not a side effect of a load.
                let partial = Box::new(partial);
                return Err(Error::IncompleteAttached { dir: pins.root().to_path_buf(), partial, interfaces });
            }
            pins.remove_all()?;
            Some(partial)
        }
    };
    pins.create_dirs()?;
    let result = load_pinned(&pins, settings, object).and_then(|mut r| {
        // Kernel drops are an addition, loaded switched off: a kernel that
        // cannot take them still gets its datapath, and status says why.
        r.kernel_drops = Some(match crate::kdrop::load(&pins, settings, false) {
            Ok(()) => crate::kdrop::state(bpffs),
            Err(e) => crate::kdrop::KernelDrops { state: "unavailable", detail: e.to_string() },
        });
        pins.finish_load()?;
        r.cleaned_up = cleaned_up;
        Ok(r)
    });
    if result.is_err() {
        // A failed load leaves nothing half-pinned behind.
        let _ = pins.remove_all();
    }
    result
}

fn load_pinned(pins: &Pins, settings: &Settings, object: &[u8]) -> Result<LoadReport> {
    let config = settings.to_config();
    let runtime = settings.runtime().to_abi();
    let map_paths: Vec<(&str, PathBuf)> = MAPS.iter().map(|m| (*m, pins.map(m))).collect();
    let mut loader = EbpfLoader::new();
    loader.override_global("cfg", &config, true);
    loader.override_global("rt", &runtime, true);
    for (name, path) in &map_paths {
        loader.map_pin_path(name, path.as_path());
    }
    // The ring buffer is only worth its memory when it is the transport.
    if settings.transport == Transport::Perf {
        loader.map_max_entries("events", 4096);
    }
    for (name, n) in &settings.max_entries {
        loader.map_max_entries(name, *n);
    }
    let mut ebpf = loader.load(object).map_err(|e| match e {
        aya::EbpfError::ProgramError(pe) => verifier_error("(object)", pe),
        other => Error::bpf("loading the datapath object", other),
    })?;
    clock::calibrate(&mut ebpf, object)?;

    for (section, pin) in [(".rodata", CONFIG_MAP), (".data", SETTINGS_MAP)] {
        let map = ebpf
            .map(section)
            .ok_or_else(|| Error::InvalidInput(format!("the datapath object has no {section} section")))?;
        map.pin(pins.map(pin)).map_err(|e| Error::bpf(format!("pinning the {section} map as {pin}"), e))?;
    }

    let mut programs = Vec::new();
    for name in [PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, PROG_TRACE_FROM, PROG_TRACE_TO] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| Error::InvalidInput(format!("the object has no program {name}")))?
            .try_into()
            .map_err(|e| Error::bpf(format!("program {name}"), e))?;
        // The verifier gives up with EAGAIN when a signal is pending for the
        // loading thread (a child exiting, a timer); libbpf retries such a
        // load, and so do we. CI saw it once, on a program that had passed.
        let mut tries = 0;
        loop {
            match prog.load() {
                Ok(()) => break,
                Err(ProgramError::LoadError { io_error, .. })
                    if io_error.raw_os_error() == Some(libc::EAGAIN) && tries < 5 =>
                {
                    tries += 1;
                }
                Err(e) => return Err(verifier_error(name, e)),
            }
        }
        let path = pins.prog(name);
        prog.pin(&path).map_err(|e| Error::bpf(format!("pinning program {name} at {}", path.display()), e))?;
        let info = prog.info().map_err(|e| Error::bpf(format!("program {name}"), e))?;
        programs.push(ProgramStatus::from_info(name, &path, &info));
    }
    Ok(LoadReport {
        pin_dir: pins.root().to_path_buf(),
        programs,
        settings: settings.clone(),
        cleaned_up: None,
        kernel_drops: None,
    })
}

/// One program attached to one interface hook.
#[derive(Clone, Debug, Serialize)]
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    pub hook: Hook,
    pub program: &'static str,
    pub mode: AttachMode,
    pub pin: PathBuf,
}

/// Attaches the datapath to both TC hooks of `ifname` and pins the links.
/// `mode` None picks TCX when the kernel has it.
pub fn attach(bpffs: &Path, ifname: &str, mode: Option<AttachMode>) -> Result<Vec<Attachment>> {
    attach_all(bpffs, &[ifname], mode)
}

/// Attaches to every interface, or to none: every name is checked before the
/// first attachment, and a failure detaches what this call attached.
pub fn attach_all(bpffs: &Path, ifnames: &[&str], mode: Option<AttachMode>) -> Result<Vec<Attachment>> {
    sys::require_privileges("attaching the datapath")?;
    sys::require_bpffs(bpffs)?;
    for ifname in ifnames {
        sys::check_ifname(ifname)?;
    }
    let _lock = lock(bpffs)?;
    let pins = Pins::new(bpffs);
    pins.require_loaded()?;
    let mut targets = Vec::new();
    for (i, ifname) in ifnames.iter().enumerate() {
        if ifnames[..i].contains(ifname) {
            return Err(Error::InvalidInput(format!("interface {ifname} is named twice")));
        }
        let ifindex = sys::ifindex(ifname)?;
        for hook in Hook::BOTH {
            if pins.attachment(ifname, hook).is_some() {
                return Err(Error::AlreadyAttached { name: ifname.to_string(), direction: hook.as_str() });
            }
        }
        targets.push((*ifname, ifindex));
    }
    let mode = mode.unwrap_or(if sys::features().tcx { AttachMode::Tcx } else { AttachMode::Clsact });
    let mut done: Vec<Attachment> = Vec::new();
    for (ifname, ifindex) in targets {
        for hook in Hook::BOTH {
            match attach_hook(&pins, ifname, ifindex, hook, mode) {
                Ok(a) => done.push(a),
                Err(e) => {
                    // Leave every interface as it was.
                    for a in &done {
                        let _ = detach_hook(&pins, &a.interface, a.hook);
                    }
                    return Err(e);
                }
            }
        }
    }
    Ok(done)
}

fn attach_hook(pins: &Pins, ifname: &str, ifindex: u32, hook: Hook, mode: AttachMode) -> Result<Attachment> {
    let name = hook.program();
    let mut prog = SchedClassifier::from_pin(pins.prog(name))
        .map_err(|e| Error::bpf(format!("opening pinned program {}", pins.prog(name).display()), e))?;
    let what = || format!("attaching {name} to {ifname} ({})", hook.as_str());
    let pin = match mode {
        AttachMode::Tcx => {
            let id = prog
                .attach_with_options(ifname, hook.tc(), TcAttachOptions::TcxOrder(LinkOrder::default()))
                .map_err(|e| Error::bpf(what(), e))?;
            let link = prog.take_link(id).map_err(|e| Error::bpf(what(), e))?;
            let fd: FdLink = link.try_into().map_err(|e: aya::programs::links::LinkError| Error::bpf(what(), e))?;
            let path = pins.link(ifname, hook);
            fd.pin(&path).map_err(|e| Error::bpf(format!("pinning link at {}", path.display()), e))?;
            path
        }
        AttachMode::Clsact => {
            match tc::qdisc_add_clsact(ifname) {
                Ok(()) => {}
                Err(e) if has_io_kind(&e, std::io::ErrorKind::AlreadyExists) => {}
                Err(e) => return Err(Error::bpf(format!("adding clsact qdisc to {ifname}"), e)),
            }
            let id = prog
                .attach_with_options(ifname, hook.tc(), TcAttachOptions::Netlink(tc::NlOptions::default()))
                .map_err(|e| Error::bpf(what(), e))?;
            // Netlink filters outlive the process once their link is forgotten.
            let link = prog.take_link(id).map_err(|e| Error::bpf(what(), e))?;
            std::mem::forget(link);
            let path = pins.clsact_marker(ifname, hook);
            fs::create_dir(&path).map_err(|e| Error::io("mkdir", &path, e))?;
            path
        }
    };
    Ok(Attachment { interface: ifname.to_string(), ifindex, hook, program: name, mode, pin })
}

/// Whether an io::Error of this kind is anywhere in the error's chain.
fn has_io_kind(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == kind) {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Removes one attachment. What is already gone (an interface deleted, a
/// filter removed with `tc`) counts as removed: only the pin is left to clear.
fn detach_hook(pins: &Pins, ifname: &str, hook: Hook) -> Result<bool> {
    match pins.attachment(ifname, hook) {
        Some((AttachMode::Tcx, path)) => {
            let link =
                PinnedLink::from_pin(&path).map_err(|e| Error::bpf(format!("opening link {}", path.display()), e))?;
            // Unpinning drops the last reference once our fd closes: the link detaches.
            drop(link.unpin().map_err(|e| Error::io("unpin", &path, e))?);
            Ok(true)
        }
        Some((AttachMode::Clsact, path)) => {
            if sys::ifindex(ifname).is_ok()
                && let Err(e) = tc::qdisc_detach_program(ifname, hook.tc(), hook.program())
                && status::clsact_filter_present(ifname, hook, None)
            {
                return Err(Error::bpf(format!("removing {} filter from {ifname}", hook.as_str()), e));
            }
            fs::remove_dir(&path).map_err(|e| Error::io("rmdir", &path, e))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Detaches the datapath from both hooks of `ifname`. Works for interfaces
/// that no longer exist (their stale pins are removed).
pub fn detach(bpffs: &Path, ifname: &str) -> Result<()> {
    detach_all(bpffs, &[ifname])
}

/// Detaches from every interface, or from none: every name must be attached
/// before the first is detached.
pub fn detach_all(bpffs: &Path, ifnames: &[&str]) -> Result<()> {
    sys::require_privileges("detaching the datapath")?;
    sys::require_bpffs(bpffs)?;
    for ifname in ifnames {
        sys::check_ifname(ifname)?;
    }
    let _lock = lock(bpffs)?;
    let pins = Pins::new(bpffs);
    for ifname in ifnames {
        if Hook::BOTH.iter().all(|h| pins.attachment(ifname, *h).is_none()) {
            return Err(Error::NotAttached { name: ifname.to_string() });
        }
    }
    for ifname in ifnames {
        for hook in Hook::BOTH {
            detach_hook(&pins, ifname, hook)?;
        }
    }
    Ok(())
}

/// What `unload` removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UnloadReport {
    pub detached: Vec<String>,
    pub removed_pins: usize,
}

/// Detaches every interface and removes every pin: no program, link or map of
/// ours is left in the kernel afterwards (unless someone else holds an fd).
pub fn unload(bpffs: &Path) -> Result<UnloadReport> {
    sys::require_privileges("unloading the datapath")?;
    sys::require_bpffs(bpffs)?;
    let _lock = lock(bpffs)?;
    let pins = Pins::new(bpffs);
    if !pins.root().exists() {
        return Err(Error::NotLoaded { dir: pins.root().to_path_buf() });
    }
    let mut report = UnloadReport::default();
    for (ifname, hook, _, _) in pins.attachments() {
        if detach_hook(&pins, &ifname, hook)? && !report.detached.contains(&ifname) {
            report.detached.push(ifname);
        }
    }
    report.removed_pins = pins.remove_all()?;
    Ok(report)
}
