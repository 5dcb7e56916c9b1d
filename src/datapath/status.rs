use std::path::{Path, PathBuf};

use aya::maps::{MapData, MapType};
use aya::programs::{ProgramInfo, SchedClassifier};
use serde::Serialize;

use super::{AttachMode, CONFIG_MAP, Hook, MAPS, PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, Pins, Settings};
use crate::abi::DpConfig;
use crate::btf::Type;
use crate::maps::any::{AnyMap, MapSpec};
use crate::maps::raw;
use crate::sys::{self, Features};
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize)]
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

#[derive(Clone, Debug, Serialize)]
pub struct AttachmentStatus {
    pub interface: String,
    /// None when the interface no longer exists (a stale pin).
    pub ifindex: Option<u32>,
    pub hook: Hook,
    pub program: &'static str,
    pub mode: AttachMode,
    /// Whether the kernel still runs our program on that hook.
    pub attached: bool,
    pub pin: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
pub struct ObjectInfo {
    pub source: &'static str,
    pub size_bytes: usize,
    pub btf_types: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub loaded: bool,
    pub object: ObjectInfo,
    pub pin_dir: PathBuf,
    pub features: Features,
    /// The event path the loaded datapath writes to (ringbuf or perf).
    pub settings: Option<Settings>,
    pub programs: Vec<ProgramStatus>,
    pub interfaces: Vec<AttachmentStatus>,
    pub maps: Vec<MapStatus>,
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

/// Offset of the `cfg` global inside the object's .rodata, from its BTF.
fn config_offset() -> Option<usize> {
    let btf = crate::btf::Btf::from_elf(crate::DATAPATH_OBJECT, "datapath.o").ok()?;
    btf.ids_by_name(".rodata").iter().find_map(|&id| match btf.get(id) {
        Some(Type::Datasec { vars, .. }) => vars.iter().find_map(|&(var, off, _)| match btf.get(var) {
            Some(Type::Var { name, .. }) if name == "cfg" => Some(off as usize),
            _ => None,
        }),
        _ => None,
    })
}

/// The settings the loaded datapath was configured with.
pub fn loaded_settings(bpffs: &Path) -> Result<Settings> {
    sys::require_bpffs(bpffs)?;
    let pins = Pins::new(bpffs);
    if !pins.is_loaded() {
        return Err(Error::NotLoaded { dir: pins.root().to_path_buf() });
    }
    read_settings(&pins).ok_or_else(|| Error::bpf("reading the settings map", "config map missing or unreadable"))
}

fn read_settings(pins: &Pins) -> Option<Settings> {
    let data = MapData::from_pin(pins.map(CONFIG_MAP)).ok()?;
    let info = data.info().ok()?;
    let mut value = vec![0u8; info.value_size() as usize];
    if !raw::lookup(&data, &0u32.to_ne_bytes(), &mut value).ok()? {
        return None;
    }
    let off = config_offset()?;
    let bytes = value.get(off..off + std::mem::size_of::<DpConfig>())?;
    // SAFETY: DpConfig is repr(C) u32s and bytes holds exactly its size.
    let c: DpConfig = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    Some(Settings::from_config(&c))
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

/// Describes what is loaded and attached under `bpffs`.
pub fn status(bpffs: &Path) -> Result<Status> {
    sys::require_privileges("reading the datapath status")?;
    sys::require_bpffs(bpffs)?;
    let pins = Pins::new(bpffs);
    let mut st = Status {
        loaded: pins.is_loaded(),
        object: ObjectInfo {
            source: "bpf/datapath.c (embedded)",
            size_bytes: crate::DATAPATH_OBJECT.len(),
            btf_types: crate::btf::Btf::from_elf(crate::DATAPATH_OBJECT, "datapath.o").map_or(0, |b| b.len()),
        },
        pin_dir: pins.root().to_path_buf(),
        features: sys::features(),
        settings: read_settings(&pins),
        programs: vec![],
        interfaces: vec![],
        maps: vec![],
    };
    if !st.loaded {
        return Ok(st);
    }
    for name in [PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT] {
        let path = pins.prog(name);
        let info = ProgramInfo::from_pin(&path).map_err(|e| Error::bpf(format!("reading {}", path.display()), e))?;
        st.programs.push(ProgramStatus::from_info(name, &path, &info));
    }
    let prog_id = |n: &str| st.programs.iter().find(|p| p.name == n).map(|p| p.id);
    for (ifname, hook, mode, pin) in pins.attachments() {
        let ifindex = sys::ifindex(&ifname).ok();
        let attached = ifindex.is_some()
            && match mode {
                AttachMode::Tcx => tcx_attached(&ifname, hook, prog_id(hook.program())),
                AttachMode::Clsact => true,
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
    for name in MAPS.iter().copied().chain([CONFIG_MAP]) {
        let path = pins.map(name);
        let data = MapData::from_pin(&path).map_err(|e| Error::bpf(format!("opening {}", path.display()), e))?;
        let info = data.info().map_err(|e| Error::bpf(format!("reading {}", path.display()), e))?;
        let mt = info.map_type().map_err(|e| Error::bpf(format!("map type of {}", path.display()), e))?;
        let entries = match mt {
            MapType::RingBuf | MapType::PerfEventArray => None,
            MapType::Array | MapType::PerCpuArray => Some(info.max_entries() as u64),
            _ => Some(AnyMap::open(&MapSpec::Path(path.clone()), bpffs)?.count()?),
        };
        st.maps.push(MapStatus {
            name: name.to_string(),
            id: info.id(),
            map_type: map_type_name(mt),
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
            entries,
            pin: path,
        });
    }
    Ok(st)
}
