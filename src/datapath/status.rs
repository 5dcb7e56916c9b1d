use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use aya::maps::{MapData, MapType};
use aya::programs::{ProgramInfo, SchedClassifier};
use serde::{Deserialize, Serialize};

use super::{
    Aggregation, AttachMode, CONFIG_MAP, Hook, MAPS, PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, PROG_TRACE_FROM,
    PROG_TRACE_TO, Partial, PinState, Pins, SETTINGS_MAP, Settings,
};
use crate::abi::{DpClock, DpConfig, DpRuntime};
use crate::sys::{self, Features};
use crate::syscall as raw;
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProgramStatus {
    pub name: String,
    pub id: u32,
    pub tag: String,
    pub pin: PathBuf,
}

impl ProgramStatus {
    pub(crate) fn from_info(name: &str, pin: &Path, info: &ProgramInfo) -> Self {
        ProgramStatus {
            name: name.to_string(),
            id: info.id(),
            tag: format!("{:016x}", info.tag()),
            pin: pin.to_path_buf(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachmentStatus {
    pub interface: String,
    /// None when the interface no longer exists (a stale pin).
    pub ifindex: Option<u32>,
    pub hook: Hook,
    #[serde(deserialize_with = "crate::words::datapath_program")]
    pub program: crate::words::Word,
    pub mode: AttachMode,
    /// Whether the kernel still runs our program on that hook.
    pub attached: bool,
    pub pin: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MapStatus {
    pub name: String,
    pub id: u32,
    #[serde(rename = "type")]
    pub map_type: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Entries in use, for maps that hold entries (None for event buffers).
    pub entries: Option<u64>,
    pub pin: PathBuf,
}

/// The datapath object this binary carries (what `load` loads).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectInfo {
    #[serde(deserialize_with = "crate::words::object_source")]
    pub source: crate::words::Word,
    pub size_bytes: usize,
    pub btf_types: usize,
}

/// Where the object `load` loads comes from.
pub const OBJECT_SOURCE: &str = "bpf/datapath.c (embedded)";

/// Where the datapath stands, in one word for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadState {
    NotLoaded,
    /// Complete: every pin there and the load that made them finished.
    Loaded,
    /// Some pins there, or a load unfinished: see `Status::partial`.
    Partial,
}

/// `datapath status`'s document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// True only when `state` is loaded.
    pub loaded: bool,
    pub state: LoadState,
    /// What a partial datapath has and lacks.
    pub partial: Option<Partial>,
    /// A dpdbg holding the datapath's lock right now (a load, attach, detach
    /// or unload under way), when the datapath is partial: it may be that
    /// process's work in progress rather than a remnant.
    pub busy_pid: Option<String>,
    pub object: ObjectInfo,
    pub pin_dir: PathBuf,
    pub features: Features,
    /// The event path the loaded datapath writes to (ringbuf or perf).
    pub settings: Option<Settings>,
    /// Where conntrack times come from (jiffies scaled, or the coarse helper).
    pub clock: Option<String>,
    /// Events the datapath could not write (buffer full), since load.
    pub events_lost: Option<u64>,
    /// Event records readers could not decode, since load.
    pub events_undecodable: Option<u64>,
    /// Kernel drops (skb:kfree_skb): on, off, or unavailable and why.
    // Not read back (the dashboard does not show it): KernelDrops is
    // Serialize only.
    #[serde(skip_deserializing)]
    pub kernel_drops: Option<crate::kdrop::KernelDrops>,
    pub programs: Vec<ProgramStatus>,
    pub interfaces: Vec<AttachmentStatus>,
    pub maps: Vec<MapStatus>,
    /// What `dpdbg serve --attach` manages on this bpffs, while it runs.
    pub agent: Option<super::agent::Managed>,
}

pub fn map_type_name(t: MapType) -> String {
    let s = format!("{t:?}");
    // "LruHash" -> "lru_hash", as bpftool names types.
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.replace("per_cpu", "percpu").replace("ring_buf", "ringbuf")
}

/// Offset of a global inside one of the object's data sections, from the
/// ELF symbol table: in an unlinked object the BTF DATASEC offsets are still
/// zero (libbpf and aya fill them in at load), the symbols are not.
pub(super) fn global_offset_in(object: &[u8], section: &str, var_name: &str) -> Option<usize> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let file = object::File::parse(object).ok()?;
    let sym = file.symbols().find(|s| s.name() == Ok(var_name))?;
    let sec = file.section_by_index(sym.section_index()?).ok()?;
    if sec.name().ok()? != section {
        return None;
    }
    usize::try_from(sym.address()).ok()
}

fn global_offset(section: &str, var_name: &str) -> Option<usize> {
    global_offset_in(crate::DATAPATH_OBJECT, section, var_name)
}

/// The settings that can change while the datapath runs (`datapath config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    pub aggregation: Aggregation,
    pub debug: bool,
}

/// The pinned data-section map `pin`, its one value, and where global `var`
/// of `size` bytes sits in it.
fn global_slot(pins: &Pins, pin: &str, section: &str, var: &str, size: usize) -> Result<(MapData, Vec<u8>, usize)> {
    let path = pins.map(pin);
    let what = || format!("reading {}", path.display());
    let data = MapData::from_pin(&path).map_err(|e| Error::bpf(what(), e))?;
    let info = data.info().map_err(|e| Error::bpf(what(), e))?;
    let mut value = vec![0u8; info.value_size() as usize];
    if !raw::lookup(&data, &0u32.to_ne_bytes(), &mut value).map_err(|e| Error::bpf(what(), e))? {
        return Err(Error::bpf(what(), "the map has no entry 0"));
    }
    let off = global_offset(section, var)
        .ok_or_else(|| Error::bpf(what(), format!("no global {var} in {section} of the object's BTF")))?;
    if off + size > value.len() {
        return Err(Error::bpf(what(), format!("{section} is {} bytes, too short for {var}", value.len())));
    }
    Ok((data, value, off))
}

/// Reads the global `var` of type T from the pinned data-section map `pin`.
fn read_global<T: Copy>(pins: &Pins, pin: &str, section: &str, var: &str) -> Result<T> {
    let (_, value, off) = global_slot(pins, pin, section, var, std::mem::size_of::<T>())?;
    // SAFETY: T is a repr(C) struct of integers (DpConfig, DpRuntime, DpClock)
    // and the slot holds at least its size (global_slot checked).
    Ok(unsafe { std::ptr::read_unaligned(value[off..].as_ptr().cast()) })
}

fn loaded(bpffs: &Path) -> Result<Pins> {
    sys::require_bpffs(bpffs)?;
    let pins = Pins::new(bpffs);
    pins.require_loaded()?;
    Ok(pins)
}

/// The run-time settings of the loaded datapath.
pub fn runtime(bpffs: &Path) -> Result<Runtime> {
    let pins = loaded(bpffs)?;
    let r: DpRuntime = read_global(&pins, SETTINGS_MAP, ".data", "rt")?;
    Ok(Runtime::from_abi(&r))
}

/// How the loaded datapath reads its clock: "jiffies (HZ 250)" once the
/// loader calibrated it, else the coarse clock helper.
pub fn clock_source(bpffs: &Path) -> Result<String> {
    clock_of(&loaded(bpffs)?)
}

/// The loaded datapath's clock calibration (`clk`): `ns_per_jiffy` 0 when
/// the loader could not measure it and the datapath reads the coarse clock.
pub fn clock_calibration(bpffs: &Path) -> Result<DpClock> {
    read_global(&loaded(bpffs)?, SETTINGS_MAP, ".data", "clk")
}

fn clock_of(pins: &Pins) -> Result<String> {
    let c: DpClock = read_global(pins, SETTINGS_MAP, ".data", "clk")?;
    Ok(match 1_000_000_000u64.checked_div(c.ns_per_jiffy) {
        None => "bpf_ktime_get_coarse_ns (jiffies not calibrated)".to_string(),
        Some(hz) => format!("jiffies (HZ {hz})"),
    })
}

/// Changes the run-time settings of the loaded datapath in place: the next
/// packet sees them, no reload, no lost connection state.
pub fn set_runtime(bpffs: &Path, r: &Runtime) -> Result<()> {
    sys::require_privileges("changing the datapath's settings")?;
    let pins = loaded(bpffs)?;
    let size = std::mem::size_of::<DpRuntime>();
    let (data, mut value, off) = global_slot(&pins, SETTINGS_MAP, ".data", "rt", size)?;
    let abi = r.to_abi();
    // SAFETY: DpRuntime is repr(C) u32s; the slice is exactly its size.
    let bytes = unsafe { std::slice::from_raw_parts((&abi as *const DpRuntime).cast::<u8>(), size) };
    value[off..off + size].copy_from_slice(bytes);
    raw::update(&data, &0u32.to_ne_bytes(), &value, 0)
        .map_err(|e| Error::bpf(format!("writing {}", pins.map(SETTINGS_MAP).display()), e))
}

/// The settings the loaded datapath runs with: load-time and run-time.
pub fn loaded_settings(bpffs: &Path) -> Result<Settings> {
    let pins = loaded(bpffs)?;
    read_settings(&pins)
}

fn read_settings(pins: &Pins) -> Result<Settings> {
    let c: DpConfig = read_global(pins, CONFIG_MAP, ".rodata", "cfg")?;
    let r: DpRuntime = read_global(pins, SETTINGS_MAP, ".data", "rt")?;
    Ok(Settings::from_parts(&c, &Runtime::from_abi(&r)))
}

/// Whether a clsact filter of ours is on the hook (with program `prog_id`
/// when given), as `tc filter show` reports it: the marker pin only says we
/// put one there, not that nobody removed it since.
pub(super) fn clsact_filter_present(ifname: &str, hook: Hook, prog_id: Option<u32>) -> bool {
    let Ok(out) =
        std::process::Command::new("tc").args(["-j", "filter", "show", "dev", ifname, hook.as_str()]).output()
    else {
        // No tc to ask: trust the marker.
        return true;
    };
    let Ok(filters) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { return false };
    filters.as_array().into_iter().flatten().any(|f| {
        let opts = &f["options"];
        let name_ok = opts["bpf_name"].as_str().is_some_and(|n| n.starts_with(hook.program()));
        let id_ok = prog_id.is_none_or(|id| opts["prog"]["id"].as_u64() == Some(id as u64));
        name_ok && id_ok
    })
}

fn tcx_attached(ifname: &str, hook: Hook, prog_id: Option<u32>) -> bool {
    let tc = match hook {
        Hook::Ingress => aya::programs::TcAttachType::Ingress,
        Hook::Egress => aya::programs::TcAttachType::Egress,
    };
    match (SchedClassifier::query_tcx(ifname, tc), prog_id) {
        (Ok((_, progs)), Some(id)) => progs.iter().any(|p| p.id() == id),
        _ => false,
    }
}

/// Packets (events) counted under `reason`, both directions, every CPU.
fn metric_total(pins: &Pins, reason: crate::abi::Reason) -> Result<u64> {
    let path = pins.map("metrics");
    let what = || format!("reading {}", path.display());
    let data = MapData::from_pin(&path).map_err(|e| Error::bpf(what(), e))?;
    let m: aya::maps::PerCpuArray<MapData, crate::abi::MetricsValue> =
        aya::maps::PerCpuArray::try_from(aya::maps::Map::from_map_data(data).map_err(|e| Error::bpf(what(), e))?)
            .map_err(|e| Error::bpf(what(), e))?;
    let mut total = 0u64;
    for dir in [crate::abi::DIR_INGRESS, crate::abi::DIR_EGRESS] {
        let vals = m.get(&(reason.0 as u32 * 2 + dir as u32), 0).map_err(|e| Error::bpf(what(), e))?;
        total = vals.iter().fold(total, |t, v| t.saturating_add(v.packets));
    }
    Ok(total)
}

/// Describes what is loaded and attached under `bpffs`.
pub fn status(bpffs: &Path) -> Result<Status> {
    status_of(bpffs, true)
}

/// The status without the maps' entry counts and the object's BTF census
/// (`maps` empty, `btf_types` 0): what a dashboard refreshing every few
/// seconds needs, without walking ten thousand conntrack keys to count them.
pub fn status_brief(bpffs: &Path) -> Result<Status> {
    status_of(bpffs, false)
}

/// Whether an io::Error of kind NotFound is anywhere in the error's chain:
/// a pin removed between the state's reading and the pin's.
fn vanished(e: &(dyn std::error::Error + 'static)) -> bool {
    super::has_io_kind(e, std::io::ErrorKind::NotFound)
}

fn status_of(bpffs: &Path, full: bool) -> Result<Status> {
    sys::require_privileges("reading the datapath status")?;
    sys::require_bpffs(bpffs)?;
    let pins = Pins::new(bpffs);
    let mut st = Status {
        loaded: false,
        state: LoadState::NotLoaded,
        partial: None,
        busy_pid: None,
        object: ObjectInfo {
            source: OBJECT_SOURCE,
            size_bytes: crate::DATAPATH_OBJECT.len(),
            btf_types: if full {
                crate::btf::Btf::from_elf(crate::DATAPATH_OBJECT, "datapath.o").map_or(0, |b| b.len())
            } else {
                0
            },
        },
        pin_dir: pins.root().to_path_buf(),
        features: sys::features(),
        settings: read_settings(&pins).ok(),
        clock: clock_of(&pins).ok(),
        events_lost: None,
        events_undecodable: None,
        kernel_drops: None,
        programs: vec![],
        interfaces: vec![],
        maps: vec![],
        agent: super::agent::Managed::read(&super::agent::Managed::path_for(bpffs), bpffs),
    };
    set_state(&mut st, &pins, bpffs);
    if st.state == LoadState::NotLoaded {
        return Ok(st);
    }
    // Every read below tolerates its pin going away meanwhile (an unload,
    // a load cleaning up): what vanished is left out, and the state is read
    // again at the end so that it matches what was shown.
    let mut gone = false;
    if st.loaded {
        match (
            metric_total(&pins, crate::abi::Reason::EVENT_LOST),
            metric_total(&pins, crate::abi::Reason::EVENT_UNDECODABLE),
        ) {
            (Ok(lost), Ok(bad)) => (st.events_lost, st.events_undecodable) = (Some(lost), Some(bad)),
            (Err(e), _) | (_, Err(e)) if matches!(&e, Error::Bpf { source, .. } if vanished(source.as_ref())) => {
                gone = true
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        }
    }
    for name in [PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, PROG_TRACE_FROM, PROG_TRACE_TO] {
        let path = pins.prog(name);
        if !path.exists() {
            continue;
        }
        match ProgramInfo::from_pin(&path) {
            Ok(info) => st.programs.push(ProgramStatus::from_info(name, &path, &info)),
            Err(e) if vanished(&e) => gone = true,
            Err(e) => return Err(Error::bpf(format!("reading {}", path.display()), e)),
        }
    }
    if st.loaded {
        st.kernel_drops = Some(crate::kdrop::state(bpffs));
    }
    let prog_id = |n: &str| st.programs.iter().find(|p| p.name == n).map(|p| p.id);
    for (ifname, hook, mode, pin) in pins.attachments() {
        let ifindex = sys::ifindex(&ifname).ok();
        let attached = ifindex.is_some()
            && match mode {
                AttachMode::Tcx => tcx_attached(&ifname, hook, prog_id(hook.program())),
                AttachMode::Clsact => clsact_filter_present(&ifname, hook, prog_id(hook.program())),
            };
        st.interfaces.push(AttachmentStatus {
            interface: ifname,
            ifindex,
            hook,
            program: hook.program(),
            mode,
            attached,
            pin,
        });
    }
    for name in MAPS.iter().copied().chain([CONFIG_MAP, SETTINGS_MAP]).filter(|_| full) {
        let path = pins.map(name);
        if !path.exists() {
            continue;
        }
        match map_status(name, &path) {
            Ok(m) => st.maps.push(m),
            Err(Error::Bpf { source, .. }) if vanished(source.as_ref()) => gone = true,
            Err(e) => return Err(e),
        }
    }
    if gone {
        set_state(&mut st, &pins, bpffs);
    }
    Ok(st)
}

fn set_state(st: &mut Status, pins: &Pins, bpffs: &Path) {
    (st.state, st.partial) = match pins.state() {
        PinState::NotLoaded => (LoadState::NotLoaded, None),
        PinState::Loaded => (LoadState::Loaded, None),
        PinState::Partial(p) => (LoadState::Partial, Some(p)),
    };
    st.loaded = st.state == LoadState::Loaded;
    st.busy_pid = st.partial.as_ref().and_then(|_| sys::lock_holder_pid(bpffs));
}

fn map_status(name: &str, path: &Path) -> Result<MapStatus> {
    let data = MapData::from_pin(path).map_err(|e| Error::bpf(format!("opening {}", path.display()), e))?;
    let info = data.info().map_err(|e| Error::bpf(format!("reading {}", path.display()), e))?;
    let mt = info.map_type().map_err(|e| Error::bpf(format!("map type of {}", path.display()), e))?;
    let entries = match mt {
        MapType::RingBuf | MapType::PerfEventArray => None,
        MapType::Array | MapType::PerCpuArray => Some(info.max_entries() as u64),
        _ => Some(
            raw::count_entries(data.fd().as_fd().as_raw_fd())
                .map_err(|e| Error::bpf(format!("counting the entries of {}", path.display()), e))?,
        ),
    };
    Ok(MapStatus {
        name: name.to_string(),
        id: info.id(),
        map_type: map_type_name(mt),
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
        entries,
        pin: path.to_path_buf(),
    })
}
