//! Any BPF map on the system, by name, pin path or id, read and written as
//! bytes and decoded through its BTF.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

use crate::btf::{Btf, JsonPlan};
use crate::pins::{CONFIG_MAP, MAPS, Pins, SETTINGS_MAP};
use crate::syscall as raw;
pub use crate::syscall::MapInfoRaw;
use crate::{Error, Result};

/// How the user named a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapSpec {
    Id(u32),
    Path(PathBuf),
    Name(String),
}

impl MapSpec {
    /// `id:N`, a path (anything with a `/`), or a map name.
    pub fn parse(s: &str) -> Result<MapSpec> {
        if let Some(id) = s.strip_prefix("id:") {
            return id.parse().map(MapSpec::Id).map_err(|_| {
                Error::InvalidInput(format!("{s:?}: expected id:N with N a map id (see `dpdbg map list`)"))
            });
        }
        if s.contains('/') {
            return Ok(MapSpec::Path(PathBuf::from(s)));
        }
        if s.is_empty() {
            return Err(Error::InvalidInput("empty map name".into()));
        }
        Ok(MapSpec::Name(s.to_string()))
    }
}

/// The kernel's map type numbers (enum bpf_map_type).
pub fn map_type_name(t: u32) -> &'static str {
    const NAMES: &[&str] = &[
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];
    NAMES.get(t as usize).copied().unwrap_or("unknown")
}

fn is_percpu(t: u32) -> bool {
    raw::is_percpu_type(t)
}

/// Map types whose entries cannot be walked and read from user space.
fn not_iterable(t: u32) -> Option<&'static str> {
    match t {
        4 => Some("a perf event array holds perf buffers, not data: read it with `dpdbg monitor`"),
        27 | 31 => Some("a ring buffer holds a stream, not entries: read it with `dpdbg monitor`"),
        22 | 23 => Some("a queue or stack has no keys to walk"),
        30 => Some("a bloom filter has no keys to walk"),
        3 | 12 | 13 | 15 | 17 | 18 | 20 | 24 | 26 | 28 | 29 | 32 | 33 => {
            Some("its values are kernel objects that cannot be read as data")
        }
        _ => None,
    }
}

/// What `map list` shows of each map.
#[derive(Clone, Debug, Serialize)]
pub struct MapSummary {
    pub id: u32,
    #[serde(rename = "type")]
    pub map_type: &'static str,
    pub name: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub btf_id: u32,
    /// Set when the map is one of dpdbg's, pinned under the given bpffs.
    pub pin: Option<PathBuf>,
}

pub struct AnyMap {
    fd: OwnedFd,
    pub info: MapInfoRaw,
    sizes: raw::Sizes,
    btf: Option<Btf>,
    cpus: usize,
}

/// Walk buffers: this many entries per BPF_MAP_LOOKUP_BATCH call.
const BATCH: usize = 8192;

/// What a map is opened for: a name that is not one of our pins may pick
/// another program's map, which is fine to read but not to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl AnyMap {
    /// Opens a map for `access`. A name resolves to our pin under `bpffs`
    /// first; otherwise a read takes the one map on the system with that
    /// name and says so in the returned note, and a write is refused with
    /// the candidates, so it never lands in another datapath's map by accident.
    pub fn open_for(spec: &MapSpec, bpffs: &Path, access: Access) -> Result<(AnyMap, Option<String>)> {
        if let MapSpec::Name(name) = spec
            && !Pins::new(bpffs).map(name).exists()
        {
            let ids = Self::ids_named(name)?;
            if access == Access::Write {
                let candidates = if ids.is_empty() {
                    "none on this system (see `dpdbg map list`)".to_string()
                } else {
                    ids.iter().map(|id| format!("id:{id}")).collect::<Vec<_>>().join(", ")
                };
                return Err(Error::InvalidInput(format!(
                    "{name:?} is not one of dpdbg's maps under {}: name the map to write by id:N or its pin path (maps named {name:?}: {candidates})",
                    Pins::new(bpffs).root().join("maps").display()
                )));
            }
            let m = Self::open(spec, bpffs)?;
            let note = format!("note: {name:?} is not pinned under {}; reading map id:{}", bpffs.display(), m.info.id);
            return Ok((m, Some(note)));
        }
        Ok((Self::open(spec, bpffs)?, None))
    }

    fn ids_named(name: &str) -> Result<Vec<u32>> {
        let mut found = Vec::new();
        for id in raw::map_ids().map_err(|e| Error::io("bpf_map_get_next_id", "maps", e))? {
            let Ok(fd) = raw::map_fd_by_id(id) else { continue };
            if raw::map_info(fd.as_raw_fd()).is_ok_and(|i| i.name == name) {
                found.push(id);
            }
        }
        Ok(found)
    }

    pub fn open(spec: &MapSpec, bpffs: &Path) -> Result<AnyMap> {
        let fd = match spec {
            MapSpec::Id(id) => raw::map_fd_by_id(*id).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => Error::InvalidInput(format!("no map with id {id} (see `dpdbg map list`)")),
                _ => Error::io("bpf_map_get_fd_by_id", format!("id:{id}"), e),
            })?,
            MapSpec::Path(p) => open_path(p)?,
            MapSpec::Name(name) => {
                let ours = Pins::new(bpffs).map(name);
                if ours.exists() {
                    open_path(&ours)?
                } else {
                    let mut found = Vec::new();
                    for id in raw::map_ids().map_err(|e| Error::io("bpf_map_get_next_id", "maps", e))? {
                        let Ok(fd) = raw::map_fd_by_id(id) else { continue };
                        if raw::map_info(fd.as_raw_fd()).is_ok_and(|i| &i.name == name) {
                            found.push((id, fd));
                        }
                    }
                    match (found.len(), found.pop()) {
                        (_, None) => {
                            return Err(Error::InvalidInput(format!("no map named {name:?} (see `dpdbg map list`)")));
                        }
                        (1, Some((_, fd))) => fd,
                        (_, Some(last)) => {
                            found.push(last);
                            let ids: Vec<String> = found.iter().map(|(id, _)| format!("id:{id}")).collect();
                            return Err(Error::InvalidInput(format!(
                                "{} maps are named {name:?}: name one by id ({})",
                                found.len(),
                                ids.join(", ")
                            )));
                        }
                    }
                }
            }
        };
        let info =
            raw::map_info(fd.as_raw_fd()).map_err(|e| Error::io("bpf_obj_get_info_by_fd", format!("{spec:?}"), e))?;
        let btf =
            if info.btf_id != 0 { raw::btf_by_id(info.btf_id).ok().and_then(|d| Btf::parse(&d).ok()) } else { None };
        let cpus = crate::sys::possible_cpus()?;
        let sizes =
            raw::Sizes::of(fd.as_raw_fd()).map_err(|e| Error::io("bpf_obj_get_info_by_fd", format!("{spec:?}"), e))?;
        Ok(AnyMap { fd, info, btf, cpus, sizes })
    }

    pub fn is_percpu(&self) -> bool {
        is_percpu(self.info.map_type)
    }

    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Bytes a lookup writes: per-CPU maps hold one 8-byte-aligned value per CPU.
    pub fn value_buf_size(&self) -> usize {
        let v = self.info.value_size as usize;
        if self.is_percpu() { v.div_ceil(8) * 8 * self.cpus } else { v }
    }

    pub fn btf(&self) -> Option<&Btf> {
        self.btf.as_ref()
    }

    /// Key and value type ids, when the map has BTF for both.
    pub fn btf_types(&self) -> Option<(&Btf, u32, u32)> {
        let b = self.btf.as_ref()?;
        // Maps without a key (arrays still have one) report 0 for the key type.
        (self.info.btf_value_type_id != 0).then_some((b, self.info.btf_key_type_id, self.info.btf_value_type_id))
    }

    /// JSON renderers for key and value: through BTF, else hex bytes.
    pub fn plans(&self) -> (JsonPlan, JsonPlan) {
        match self.btf_types() {
            Some((b, k, v)) => {
                let key = if k != 0 { JsonPlan::new(b, k) } else { JsonPlan::hex(self.info.key_size as usize) };
                (key, JsonPlan::new(b, v))
            }
            None => (JsonPlan::hex(self.info.key_size as usize), JsonPlan::hex(self.info.value_size as usize)),
        }
    }

    pub fn check_iterable(&self) -> Result<()> {
        match not_iterable(self.info.map_type) {
            Some(why) => Err(Error::InvalidInput(format!(
                "map {} (id {}) is a {} and cannot be dumped: {why}",
                self.info.name,
                self.info.id,
                map_type_name(self.info.map_type)
            ))),
            None => Ok(()),
        }
    }

    fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        let mut v = vec![0u8; self.value_buf_size()];
        match raw::lookup_fd(self.fd(), self.sizes, key, &mut v) {
            Ok(true) => Ok(Some(v)),
            Ok(false) => Ok(None),
            Err(e) => Err(Error::io("bpf_map_lookup_elem", format!("map {}", self.info.name), e)),
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), InputError> {
        self.check_input(key, Side::Key)
    }

    /// Whether `bytes` has a size this map takes for a key or a value (a
    /// per-CPU value: one value, or one for each CPU).
    pub fn check_input(&self, bytes: &[u8], side: Side) -> Result<(), InputError> {
        let map = self.info.name.clone();
        let len = bytes.len();
        match side {
            Side::Key if len != self.info.key_size as usize => {
                Err(InputError::KeySize { map, len, expected: self.info.key_size as usize })
            }
            Side::Value => {
                let vs = self.info.value_size as usize;
                let all = self.is_percpu().then(|| (self.value_buf_size(), self.cpus));
                if len == vs || all.is_some_and(|(n, _)| n == len) {
                    Ok(())
                } else {
                    Err(InputError::ValueSize { map, len, expected: vs, all_cpus: all })
                }
            }
            Side::Key => Ok(()),
        }
    }

    /// Writes one entry. A per-CPU value may be one value (copied to every CPU) or one per CPU.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        self.check_key(key)?;
        self.check_input(value, Side::Value)?;
        let vs = self.info.value_size as usize;
        let buf = if self.is_percpu() && value.len() == vs {
            let stride = vs.div_ceil(8) * 8;
            let mut b = vec![0u8; stride * self.cpus];
            for c in 0..self.cpus {
                b[c * stride..c * stride + vs].copy_from_slice(value);
            }
            b
        } else {
            value.to_vec()
        };
        raw::update_fd(self.fd(), self.sizes, key, &buf, flags)
            .map_err(|e| Error::io("bpf_map_update_elem", format!("map {}", self.info.name), e))
    }

    /// Entries in the map, counted with batch reads.
    pub fn count(&self) -> Result<u64> {
        self.for_each_batch(|_, _, _| Ok(()))
    }

    /// Writes many entries at once (keys and values packed back to back).
    pub fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<u32> {
        let n = keys.len() / self.info.key_size.max(1) as usize;
        if n * self.info.key_size as usize != keys.len() || n * self.value_buf_size() != values.len() {
            return Err(Error::InvalidInput(
                "update_batch: keys and values do not line up with the map's sizes".into(),
            ));
        }
        raw::update_batch(self.fd(), self.sizes, keys, values, n as u32)
            .map_err(|e| Error::io("bpf_map_update_batch", format!("map {}", self.info.name), e))
    }

    /// Deletes one entry; Ok(false) when it was not there.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        raw::delete_fd(self.fd(), self.sizes, key)
            .map_err(|e| Error::io("bpf_map_delete_elem", format!("map {}", self.info.name), e))
    }

    /// Streams every entry in batches to `f(keys, values, count)`, where keys
    /// are `key_size` apart and values `value_buf_size()` apart. A second
    /// thread reads the next batch while `f` works on this one; memory stays
    /// at two batches whatever the map's size.
    /// Deletes the keys packed in `keys` with BPF_MAP_DELETE_BATCH, one
    /// delete at a time where the map type has no batch delete. A key that is
    /// already gone (the datapath or the LRU took it) is skipped, not an
    /// error. Returns how many this call deleted.
    pub fn delete_many(&self, keys: &[u8]) -> Result<u64> {
        let ks = self.info.key_size as usize;
        if ks == 0 || !keys.len().is_multiple_of(ks) {
            return Err(Error::InvalidInput(format!(
                "map {}: {} key bytes are not a whole number of {ks}-byte keys",
                self.info.name,
                keys.len()
            )));
        }
        let mut deleted = 0u64;
        let mut rest = keys;
        while !rest.is_empty() {
            let n = (rest.len() / ks).min(BATCH);
            let (done, err) = raw::delete_batch(self.fd(), self.sizes, &rest[..n * ks], n as u32);
            deleted += done as u64;
            rest = &rest[done as usize * ks..];
            match err {
                None => {}
                Some(e) if e.raw_os_error() == Some(libc::ENOENT) => rest = &rest[ks..],
                // 524: the kernel's ENOTSUPP, a map type without batch delete.
                Some(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(524) | Some(libc::EOPNOTSUPP)) => {
                    for k in rest.chunks(ks) {
                        deleted += self.delete(k)? as u64;
                    }
                    break;
                }
                Some(e) => return Err(Error::bpf(format!("map {}: bpf_map_delete_batch", self.info.name), e)),
            }
        }
        Ok(deleted)
    }

    pub fn for_each_batch(&self, mut f: impl FnMut(&[u8], &[u8], usize) -> Result<()>) -> Result<u64> {
        self.check_iterable()?;
        let ks = self.info.key_size as usize;
        let vs = self.value_buf_size();
        let fd = self.fd();
        let name = self.info.name.clone();
        let (full_tx, full_rx) = mpsc::sync_channel::<Result<(Vec<u8>, Vec<u8>, usize)>>(1);
        let (empty_tx, empty_rx) = mpsc::channel::<(Vec<u8>, Vec<u8>)>();
        for _ in 0..2 {
            let _ = empty_tx.send((vec![0u8; ks.max(1) * BATCH], vec![0u8; vs.max(1) * BATCH]));
        }
        let mut total = 0u64;
        std::thread::scope(|scope| -> Result<()> {
            let sizes = self.sizes;
            scope.spawn(move || read_batches(fd, sizes, ks, vs, &name, empty_rx, full_tx));
            for msg in full_rx {
                let (k, v, n) = msg?;
                total += n as u64;
                let r = f(&k[..n * ks], &v[..n * vs], n);
                let _ = empty_tx.send((k, v));
                r?;
            }
            Ok(())
        })?;
        Ok(total)
    }
}

fn open_path(p: &Path) -> Result<OwnedFd> {
    let fd = raw::obj_get(p).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Error::InvalidInput(format!("{}: no such pinned map", p.display())),
        Some(libc::EINVAL) | Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOTDIR) => Error::InvalidInput(
            format!("{}: not a pinned BPF object (pins live on a bpffs mount, e.g. /sys/fs/bpf)", p.display()),
        ),
        _ => Error::io("bpf_obj_get", p, e),
    })?;
    // BPF_OBJ_GET_INFO_BY_FD answers for programs and links too; fdinfo says what the fd is.
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap_or_default();
    if !fdinfo.contains("map_type:") {
        let what = if fdinfo.contains("prog_type:") {
            "a program"
        } else if fdinfo.contains("link_type:") {
            "a link"
        } else {
            "not a map"
        };
        return Err(Error::InvalidInput(format!("{}: this pinned BPF object is {what}, not a map", p.display())));
    }
    Ok(fd)
}

type Batch = Result<(Vec<u8>, Vec<u8>, usize)>;

fn read_batches(
    fd: i32,
    sizes: raw::Sizes,
    ks: usize,
    vs: usize,
    name: &str,
    empty: mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
    full: mpsc::SyncSender<Batch>,
) {
    let mut token_in = vec![0u8; ks.max(8)];
    let mut token_out = vec![0u8; ks.max(8)];
    let mut first = true;
    let mut batch_ok = true;
    // Key iteration state for the fallback.
    let mut cur = vec![0u8; ks];
    let mut started = false;
    loop {
        let Ok((mut k, mut v)) = empty.recv() else { return };
        if batch_ok {
            match raw::lookup_batch(
                fd,
                sizes,
                (!first).then_some(&token_in[..]),
                &mut token_out,
                &mut k,
                &mut v,
                BATCH as u32,
            ) {
                Ok((n, more)) => {
                    first = false;
                    std::mem::swap(&mut token_in, &mut token_out);
                    if (n > 0 && full.send(Ok((k, v, n as usize))).is_err()) || !more {
                        return;
                    }
                    continue;
                }
                Err(e) if first && matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTSUP) | Some(524)) => {
                    // This map type has no batch support: walk its keys instead.
                    batch_ok = false;
                }
                Err(e) => {
                    let _ = full.send(Err(Error::io("bpf_map_lookup_batch", format!("map {name}"), e)));
                    return;
                }
            }
        }
        let mut n = 0;
        while n < BATCH {
            let key_slot = &mut k[n * ks..(n + 1) * ks];
            match raw::get_next_key_fd(fd, sizes, started.then_some(&cur[..]), key_slot) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let _ = full.send(Err(Error::io("bpf_map_get_next_key", format!("map {name}"), e)));
                    return;
                }
            }
            started = true;
            cur.copy_from_slice(key_slot);
            // An entry deleted between the two calls is skipped, not an error.
            match raw::lookup_fd(fd, sizes, &cur, &mut v[n * vs..(n + 1) * vs]) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => {
                    let _ = full.send(Err(Error::io("bpf_map_lookup_elem", format!("map {name}"), e)));
                    return;
                }
            }
        }
        let done = n < BATCH;
        if (n > 0 && full.send(Ok((k, v, n))).is_err()) || done {
            return;
        }
    }
}

/// Every map on the system, with the pin path of dpdbg's own.
pub fn list(bpffs: &Path) -> Result<Vec<MapSummary>> {
    let pins = Pins::new(bpffs);
    let mut ours = std::collections::HashMap::new();
    for name in MAPS.iter().copied().chain([CONFIG_MAP, SETTINGS_MAP]) {
        let p = pins.map(name);
        if let Ok(fd) = raw::obj_get(&p)
            && let Ok(i) = raw::map_info(fd.as_raw_fd())
        {
            ours.insert(i.id, p);
        }
    }
    let mut out = Vec::new();
    for id in raw::map_ids().map_err(|e| Error::io("bpf_map_get_next_id", "maps", e))? {
        let Ok(fd) = raw::map_fd_by_id(id) else { continue };
        let Ok(i) = raw::map_info(fd.as_raw_fd()) else { continue };
        out.push(MapSummary {
            id,
            map_type: map_type_name(i.map_type),
            name: i.name,
            key_size: i.key_size,
            value_size: i.value_size,
            max_entries: i.max_entries,
            flags: i.map_flags,
            btf_id: i.btf_id,
            pin: ours.remove(&id),
        });
    }
    Ok(out)
}

/// A key or value given for a map that the map cannot take: malformed, or
/// not what the map's BTF or sizes say. The caller's to fix, before anything
/// reaches the kernel.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `hex:` followed by something that is not whole bytes of hex.
    #[error("{shown}: expected hex bytes, e.g. hex:0a000001 or \"hex:0a 00 00 01\"")]
    Hex { shown: String },
    /// JSON for a map without BTF.
    #[error("map {map} has no BTF, so its {what} cannot be given as JSON: give it as hex:… ({size} bytes)")]
    NoBtf { map: String, what: &'static str, size: u32 },
    /// JSON for the side of a map whose BTF does not describe it.
    #[error("map {map} has no BTF for its {what}: give it as hex:…")]
    NoBtfFor { map: String, what: &'static str },
    /// Neither hex nor JSON.
    #[error("{what} {shown} is not valid JSON ({reason}); give JSON or hex:…")]
    Json { what: &'static str, shown: String, reason: String },
    /// JSON that does not fit the type: a field missing, unknown or out of range.
    #[error(transparent)]
    Encode(#[from] crate::btf::EncodeError),
    /// A key of the wrong size.
    #[error("key is {len} bytes, map {map} takes {expected}-byte keys")]
    KeySize { map: String, len: usize, expected: usize },
    /// A value of the wrong size.
    #[error(
        "value is {len} bytes, map {map} takes {expected}-byte values{}",
        all_cpus.map_or(String::new(), |(n, cpus)| format!(" (or {n} for all {cpus} CPUs)"))
    )]
    ValueSize { map: String, len: usize, expected: usize, all_cpus: Option<(usize, usize)> },
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Error {
        Error::InvalidInput(e.to_string())
    }
}

/// Parses `hex:0a 00 00 01` / `hex:0a000001` into bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, InputError> {
    let body: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let body = body.strip_prefix("0x").unwrap_or(&body);
    if !body.len().is_multiple_of(2) || !body.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(InputError::Hex { shown: quote(s) });
    }
    Ok((0..body.len()).step_by(2).map(|i| u8::from_str_radix(&body[i..i + 2], 16).unwrap_or(0)).collect())
}

/// Which side of an entry a user's input is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

impl AnyMap {
    /// The bytes for a key or value the user typed: `hex:…`, or JSON
    /// checked against the map's BTF.
    pub fn parse_input(&self, s: &str, side: Side) -> Result<Vec<u8>> {
        self.parse_input_with(s, side, crate::btf::EncodeOptions::default())
    }

    /// Bytes for a key or value given as JSON (checked against the map's
    /// BTF, `opts` saying how strictly) or as `hex:…`.
    pub fn parse_input_with(&self, s: &str, side: Side, opts: crate::btf::EncodeOptions) -> Result<Vec<u8>> {
        Ok(self.encode_input(s, side, opts)?)
    }

    /// As [`AnyMap::parse_input_with`], and of a size the map takes, with
    /// why not as an [`InputError`]: the caller's mistake, told apart from
    /// what the kernel refuses.
    pub fn encode_input(&self, s: &str, side: Side, opts: crate::btf::EncodeOptions) -> Result<Vec<u8>, InputError> {
        let what = if side == Side::Key { "key" } else { "value" };
        let map = || self.info.name.clone();
        let bytes = if let Some(h) = s.strip_prefix("hex:") {
            parse_hex(h)?
        } else {
            let Some((btf, k, v)) = self.btf_types() else {
                let size = if side == Side::Key { self.info.key_size } else { self.info.value_size };
                return Err(InputError::NoBtf { map: map(), what, size });
            };
            let ty = if side == Side::Key { k } else { v };
            if ty == 0 {
                return Err(InputError::NoBtfFor { map: map(), what });
            }
            let json = crate::btf::parse_strict(s).map_err(|e| InputError::Json {
                what,
                shown: quote(s),
                reason: e.to_string(),
            })?;
            let opts = crate::btf::EncodeOptions { root: Some(what), ..opts };
            crate::btf::encode_with(btf, ty, &json, opts)?
        };
        self.check_input(&bytes, side)?;
        Ok(bytes)
    }
}

/// User input for an error message, cut to a readable length.
pub fn quote(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &s[..end], s.len())
}

/// Renders one entry as JSON: `{"key":…,"value":…}`, or `"values":[{"cpu":N,"value":…}]` per CPU.
pub fn write_entry(
    out: &mut Vec<u8>,
    key_plan: &JsonPlan,
    value_plan: &JsonPlan,
    key: &[u8],
    value: &[u8],
    percpu: Option<(usize, usize)>,
) {
    out.extend_from_slice(b"{\"key\":");
    key_plan.write(key, out);
    match percpu {
        None => {
            out.extend_from_slice(b",\"value\":");
            value_plan.write(value, out);
        }
        Some((cpus, stride)) => {
            out.extend_from_slice(b",\"values\":[");
            let mut ib = itoa::Buffer::new();
            for c in 0..cpus {
                if c > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"cpu\":");
                out.extend_from_slice(ib.format(c).as_bytes());
                out.extend_from_slice(b",\"value\":");
                value_plan.write(&value[c * stride..], out);
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}
