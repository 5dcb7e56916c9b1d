//! The bpf(2) commands aya does not expose generically: byte-level element
//! access so any map can be read whatever its types, batch lookups (aya
//! 0.14 has none), object info with BTF ids, and id iteration.
//!
//! A leaf of the crate: it imports nothing of dpdbg, and both `datapath`
//! and `maps` build on it. Crate-private: the kernel writes through the
//! pointers these calls pass, so every element and batch call checks its
//! buffers against the map's own sizes ([`Sizes`], read from the kernel)
//! before the syscall.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use aya::maps::MapData;

const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_OBJ_GET: u32 = 7;
const BPF_PROG_GET_NEXT_ID: u32 = 11;
const BPF_MAP_GET_NEXT_ID: u32 = 12;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_BTF_GET_FD_BY_ID: u32 = 19;
const BPF_MAP_LOOKUP_BATCH: u32 = 24;
const BPF_MAP_UPDATE_BATCH: u32 = 26;
const BPF_MAP_DELETE_BATCH: u32 = 27;
const BPF_LINK_GET_FD_BY_ID: u32 = 30;
const BPF_LINK_GET_NEXT_ID: u32 = 31;
const BPF_ENABLE_STATS: u32 = 32;

/// bpf_attr is a union of at most this many bytes for the commands used here.
type Attr = [u64; 16];

fn put_u32(a: &mut Attr, off: usize, v: u32) {
    let bytes: &mut [u8; 128] = bytemuck_attr(a);
    bytes[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(a: &mut Attr, off: usize, v: u64) {
    let bytes: &mut [u8; 128] = bytemuck_attr(a);
    bytes[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(a: &Attr, off: usize) -> u32 {
    // SAFETY: Attr is 128 bytes of plain integers.
    let bytes: &[u8; 128] = unsafe { &*(a as *const Attr as *const [u8; 128]) };
    u32::from_ne_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
}

fn bytemuck_attr(a: &mut Attr) -> &mut [u8; 128] {
    // SAFETY: Attr is 128 bytes of plain integers, any byte pattern is valid.
    unsafe { &mut *(a as *mut Attr as *mut [u8; 128]) }
}

fn sys_bpf(cmd: u32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: attr is a zero-initialised bpf_attr for `cmd`; every pointer
    // stored in it references a live buffer of the size the command needs.
    let r =
        unsafe { libc::syscall(libc::SYS_bpf, cmd as libc::c_long, attr.as_mut_ptr(), std::mem::size_of::<Attr>()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn elem(cmd: u32, fd: RawFd, key: Option<&[u8]>, value: u64, flags: u64) -> io::Result<bool> {
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, fd as u32);
    put_u64(&mut a, 8, key.map_or(0, |k| k.as_ptr() as u64));
    put_u64(&mut a, 16, value);
    put_u64(&mut a, 24, flags);
    match sys_bpf(cmd, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A map's key size and the bytes one of its values takes in user space
/// (per-CPU maps: value_size rounded to 8, times the possible CPUs), as the
/// kernel reports them. Only `Sizes::of` makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sizes {
    key: usize,
    value: usize,
}

/// Per-CPU map types: their values come one per possible CPU.
pub(crate) fn is_percpu_type(t: u32) -> bool {
    matches!(t, 5 | 6 | 10 | 21)
}

fn possible_cpus() -> io::Result<usize> {
    aya::util::nr_cpus().map_err(|(_, e)| e)
}

impl Sizes {
    pub(crate) fn of(fd: RawFd) -> io::Result<Sizes> {
        let i = map_info(fd)?;
        let v = i.value_size as usize;
        let value = if is_percpu_type(i.map_type) { v.div_ceil(8) * 8 * possible_cpus()? } else { v };
        Ok(Sizes { key: i.key_size as usize, value })
    }

    /// Bytes of a key.
    pub(crate) fn key(self) -> usize {
        self.key
    }

    /// Bytes of a value as the kernel copies it (all CPUs' for per-CPU maps).
    pub(crate) fn value(self) -> usize {
        self.value
    }
}

fn need(what: &str, have: usize, need: usize) -> io::Result<()> {
    if have < need {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} buffer of {have} bytes for a map that needs {need}"),
        ));
    }
    Ok(())
}

/// Next key after `key` (the first when None); Ok(false) at the end.
pub(crate) fn get_next_key_fd(fd: RawFd, s: Sizes, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    if let Some(k) = key {
        need("key", k.len(), s.key)?;
    }
    need("next key", next.len(), s.key)?;
    elem(BPF_MAP_GET_NEXT_KEY, fd, key, next.as_mut_ptr() as u64, 0)
}

/// Looks `key` up into `value`; Ok(false) when absent.
pub(crate) fn lookup_fd(fd: RawFd, s: Sizes, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    need("key", key.len(), s.key)?;
    need("value", value.len(), s.value)?;
    elem(BPF_MAP_LOOKUP_ELEM, fd, Some(key), value.as_mut_ptr() as u64, 0)
}

pub(crate) fn lookup(map: &MapData, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let fd = map.fd().as_fd().as_raw_fd();
    lookup_fd(fd, Sizes::of(fd)?, key, value)
}

/// Writes `key`. Every refusal is an error, ENOENT included (BPF_EXIST on a
/// missing key): a write the kernel did not make must never look like one.
pub(crate) fn update_fd(fd: RawFd, s: Sizes, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    need("key", key.len(), s.key)?;
    need("value", value.len(), s.value)?;
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, fd as u32);
    put_u64(&mut a, 8, key.as_ptr() as u64);
    put_u64(&mut a, 16, value.as_ptr() as u64);
    put_u64(&mut a, 24, flags);
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

pub(crate) fn update(map: &MapData, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    let fd = map.fd().as_fd().as_raw_fd();
    update_fd(fd, Sizes::of(fd)?, key, value, flags)
}

/// Deletes `key`; Ok(false) when it was not there.
pub(crate) fn delete_fd(fd: RawFd, s: Sizes, key: &[u8]) -> io::Result<bool> {
    need("key", key.len(), s.key)?;
    elem(BPF_MAP_DELETE_ELEM, fd, Some(key), 0, 0)
}

/// One BPF_MAP_LOOKUP_BATCH call. `token` carries the position between
/// calls (None for the first). Returns how many entries were written and
/// whether the map has more. Err(ENOTSUPP/EINVAL) when the map type has no
/// batch support.
pub(crate) fn lookup_batch(
    fd: RawFd,
    s: Sizes,
    token_in: Option<&[u8]>,
    token_out: &mut [u8],
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> io::Result<(u32, bool)> {
    // The position token is a key for some map types, a bucket number for others.
    need("batch token", token_out.len(), s.key.max(4))?;
    if let Some(t) = token_in {
        need("batch token", t.len(), s.key.max(4))?;
    }
    need("batch keys", keys.len(), count as usize * s.key)?;
    need("batch values", values.len(), count as usize * s.value)?;
    let mut a: Attr = [0; 16];
    put_u64(&mut a, 0, token_in.map_or(0, |t| t.as_ptr() as u64));
    put_u64(&mut a, 8, token_out.as_mut_ptr() as u64);
    put_u64(&mut a, 16, keys.as_mut_ptr() as u64);
    put_u64(&mut a, 24, values.as_mut_ptr() as u64);
    put_u32(&mut a, 32, count);
    put_u32(&mut a, 36, fd as u32);
    match sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut a) {
        Ok(_) => Ok((get_u32(&a, 32), true)),
        // ENOENT ends the walk; the count still says what this call returned.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok((get_u32(&a, 32), false)),
        Err(e) => Err(e),
    }
}

/// Writes `count` entries in one BPF_MAP_UPDATE_BATCH call; returns how many went in.
pub(crate) fn update_batch(fd: RawFd, s: Sizes, keys: &[u8], values: &[u8], count: u32) -> io::Result<u32> {
    need("batch keys", keys.len(), count as usize * s.key)?;
    need("batch values", values.len(), count as usize * s.value)?;
    let mut a: Attr = [0; 16];
    put_u64(&mut a, 16, keys.as_ptr() as u64);
    put_u64(&mut a, 24, values.as_ptr() as u64);
    put_u32(&mut a, 32, count);
    put_u32(&mut a, 36, fd as u32);
    sys_bpf(BPF_MAP_UPDATE_BATCH, &mut a)?;
    Ok(get_u32(&a, 32))
}

/// Deletes `count` keys (packed in `keys`) in one BPF_MAP_DELETE_BATCH call.
/// Returns how many were deleted before the kernel stopped, and the error
/// that stopped it (ENOENT: the next key was already gone).
pub(crate) fn delete_batch(fd: RawFd, s: Sizes, keys: &[u8], count: u32) -> (u32, Option<io::Error>) {
    if let Err(e) = need("batch keys", keys.len(), count as usize * s.key) {
        return (0, Some(e));
    }
    let mut a: Attr = [0; 16];
    put_u64(&mut a, 16, keys.as_ptr() as u64);
    put_u32(&mut a, 32, count);
    put_u32(&mut a, 36, fd as u32);
    match sys_bpf(BPF_MAP_DELETE_BATCH, &mut a) {
        Ok(_) => (get_u32(&a, 32), None),
        Err(e) => (get_u32(&a, 32), Some(e)),
    }
}

/// A map's description from BPF_OBJ_GET_INFO_BY_FD, BTF ids included.
#[derive(Clone, Debug, Default)]
pub struct MapInfoRaw {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: String,
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

fn obj_info(fd: RawFd, buf: &mut [u8]) -> io::Result<u32> {
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, fd as u32);
    put_u32(&mut a, 4, buf.len() as u32);
    put_u64(&mut a, 8, buf.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(get_u32(&a, 4))
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(x)
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub(crate) fn map_info(fd: RawFd) -> io::Result<MapInfoRaw> {
    let mut b = [0u8; 88];
    obj_info(fd, &mut b)?;
    Ok(MapInfoRaw {
        map_type: le32(&b, 0),
        id: le32(&b, 4),
        key_size: le32(&b, 8),
        value_size: le32(&b, 12),
        max_entries: le32(&b, 16),
        map_flags: le32(&b, 20),
        name: cstr(&b[24..40]),
        btf_id: le32(&b, 64),
        btf_key_type_id: le32(&b, 68),
        btf_value_type_id: le32(&b, 72),
    })
}

/// The raw BTF blob with this id (what a map's btf_id refers to).
pub(crate) fn btf_by_id(id: u32) -> io::Result<Vec<u8>> {
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, id);
    let fd = owned(sys_bpf(BPF_BTF_GET_FD_BY_ID, &mut a)?);
    // First ask for the size, then fetch the data.
    let mut info = [0u8; 32];
    obj_info(fd.as_raw_fd(), &mut info)?;
    let size = le32(&info, 8) as usize;
    let mut data = vec![0u8; size];
    let mut info = [0u8; 32];
    info[0..8].copy_from_slice(&(data.as_mut_ptr() as u64).to_ne_bytes());
    info[8..12].copy_from_slice(&(size as u32).to_ne_bytes());
    obj_info(fd.as_raw_fd(), &mut info)?;
    Ok(data)
}

pub(crate) fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, id);
    sys_bpf(BPF_MAP_GET_FD_BY_ID, &mut a).map(owned)
}

/// Opens a pinned object (map, program or link) by path.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut a: Attr = [0; 16];
    put_u64(&mut a, 0, c.as_ptr() as u64);
    sys_bpf(BPF_OBJ_GET, &mut a).map(owned)
}

fn next_id(cmd: u32, start: u32) -> io::Result<Option<u32>> {
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, start);
    match sys_bpf(cmd, &mut a) {
        Ok(_) => Ok(Some(get_u32(&a, 4))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ids of every map on the system, ascending.
pub(crate) fn map_ids() -> io::Result<Vec<u32>> {
    ids(BPF_MAP_GET_NEXT_ID)
}

/// Ids of every program on the system, ascending.
pub(crate) fn prog_ids() -> io::Result<Vec<u32>> {
    ids(BPF_PROG_GET_NEXT_ID)
}

fn ids(cmd: u32) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut cur = 0;
    while let Some(id) = next_id(cmd, cur)? {
        out.push(id);
        cur = id;
    }
    Ok(out)
}

pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, id);
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut a).map(owned)
}

/// What `prog list` shows of a program.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgInfoRaw {
    pub prog_type: u32,
    pub tag: [u8; 8],
    pub name: String,
    pub map_ids: Vec<u32>,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

pub(crate) fn prog_info(fd: RawFd) -> io::Result<ProgInfoRaw> {
    // bpf_prog_info: type 0, id 4, tag 8..16, nr_map_ids 52, map_ids 56,
    // name 64..80, run_time_ns 192, run_cnt 200.
    let mut b = [0u8; 232];
    obj_info(fd, &mut b)?;
    let nr = le32(&b, 52);
    let mut ids = vec![0u32; nr as usize];
    if nr > 0 {
        let mut b2 = [0u8; 232];
        b2[52..56].copy_from_slice(&nr.to_ne_bytes());
        b2[56..64].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
        obj_info(fd, &mut b2)?;
    }
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&b[8..16]);
    Ok(ProgInfoRaw {
        prog_type: le32(&b, 0),
        tag,
        name: cstr(&b[64..80]),
        map_ids: ids,
        run_time_ns: le64(&b, 192),
        run_cnt: le64(&b, 200),
    })
}

/// A program's translated instructions (what the verifier left, map
/// pointers turned back into map ids by the kernel), with what a dump needs
/// beside them.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgXlated {
    pub id: u32,
    pub prog_type: u32,
    pub name: String,
    pub tag: [u8; 8],
    /// 8 bytes per instruction, as struct bpf_insn.
    pub insns: Vec<u8>,
    pub map_ids: Vec<u32>,
    /// The kernel addresses of the JITed functions: `call pc+N` names them
    /// as bpftool does.
    pub jited_ksyms: Vec<u64>,
    pub btf_id: u32,
    /// (instruction offset, BTF FUNC type id) of each function.
    pub func_info: Vec<(u32, u32)>,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub verified_insns: u32,
}

/// BPF_OBJ_GET_INFO_BY_FD on a program, twice: the lengths, then the arrays.
pub(crate) fn prog_xlated(fd: RawFd) -> io::Result<ProgXlated> {
    // bpf_prog_info: xlated_prog_len 20, xlated_prog_insns 32, nr_map_ids 52,
    // map_ids 56, nr_jited_ksyms 104, btf_id 128, func_info_rec_size 132,
    // func_info 136, nr_func_info 144, verified_insns 216.
    let mut b = [0u8; 232];
    obj_info(fd, &mut b)?;
    let len = le32(&b, 20) as usize;
    let nr_maps = le32(&b, 52) as usize;
    let nr_func = le32(&b, 144) as usize;
    let nr_ksyms = le32(&b, 104) as usize;
    let mut ksyms = vec![0u64; nr_ksyms];
    let mut insns = vec![0u8; len];
    let mut ids = vec![0u32; nr_maps];
    let mut funcs = vec![0u32; nr_func * 2];
    let mut b2 = [0u8; 232];
    b2[20..24].copy_from_slice(&(len as u32).to_ne_bytes());
    b2[32..40].copy_from_slice(&(insns.as_mut_ptr() as u64).to_ne_bytes());
    b2[52..56].copy_from_slice(&(nr_maps as u32).to_ne_bytes());
    b2[56..64].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    if nr_ksyms > 0 {
        b2[104..108].copy_from_slice(&(nr_ksyms as u32).to_ne_bytes());
        b2[112..120].copy_from_slice(&(ksyms.as_mut_ptr() as u64).to_ne_bytes());
    }
    if nr_func > 0 {
        b2[132..136].copy_from_slice(&8u32.to_ne_bytes());
        b2[136..144].copy_from_slice(&(funcs.as_mut_ptr() as u64).to_ne_bytes());
        b2[144..148].copy_from_slice(&(nr_func as u32).to_ne_bytes());
    }
    obj_info(fd, &mut b2)?;
    // A program replaced between the calls cannot change: its fd pins it.
    insns.truncate(le32(&b2, 20) as usize);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&b[8..16]);
    Ok(ProgXlated {
        id: le32(&b, 4),
        prog_type: le32(&b, 0),
        name: cstr(&b[64..80]),
        tag,
        insns,
        map_ids: ids,
        jited_ksyms: ksyms,
        btf_id: le32(&b, 128),
        func_info: funcs.chunks(2).map(|c| (c[0], c[1])).collect(),
        run_time_ns: le64(&b, 192),
        run_cnt: le64(&b, 200),
        verified_insns: le32(&b, 216),
    })
}

/// A link and where it attaches, when the kernel says (tcx, netkit, xdp).
#[derive(Clone, Debug, Default)]
pub(crate) struct LinkInfoRaw {
    pub link_type: u32,
    pub prog_id: u32,
    pub ifindex: Option<u32>,
    pub attach_type: Option<u32>,
}

const BPF_LINK_TYPE_XDP: u32 = 6;
const BPF_LINK_TYPE_TCX: u32 = 11;
const BPF_LINK_TYPE_NETKIT: u32 = 13;

pub(crate) fn links() -> io::Result<Vec<LinkInfoRaw>> {
    let mut out = Vec::new();
    for id in ids(BPF_LINK_GET_NEXT_ID)? {
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 0, id);
        let Ok(fd) = sys_bpf(BPF_LINK_GET_FD_BY_ID, &mut a).map(owned) else { continue };
        let mut b = [0u8; 64];
        if obj_info(fd.as_raw_fd(), &mut b).is_err() {
            continue;
        }
        let link_type = le32(&b, 0);
        let (ifindex, attach_type) = match link_type {
            BPF_LINK_TYPE_TCX | BPF_LINK_TYPE_NETKIT => (Some(le32(&b, 16)), Some(le32(&b, 20))),
            BPF_LINK_TYPE_XDP => (Some(le32(&b, 16)), None),
            _ => (None, None),
        };
        out.push(LinkInfoRaw { link_type, prog_id: le32(&b, 8), ifindex, attach_type });
    }
    Ok(out)
}

/// Turns on run-time statistics for as long as the returned fd lives.
pub(crate) fn enable_run_time_stats() -> io::Result<OwnedFd> {
    let mut a: Attr = [0; 16];
    put_u32(&mut a, 0, 0); // BPF_STATS_RUN_TIME
    sys_bpf(BPF_ENABLE_STATS, &mut a).map(owned)
}

/// How many entries a map holds: batch lookups where the map type has them,
/// else a walk of its keys.
pub(crate) fn count_entries(fd: RawFd) -> io::Result<u64> {
    const N: usize = 4096;
    let s = Sizes::of(fd)?;
    let (mut keys, mut values) = (vec![0u8; s.key.max(1) * N], vec![0u8; s.value.max(1) * N]);
    let (mut tin, mut tout) = (vec![0u8; s.key.max(8)], vec![0u8; s.key.max(8)]);
    let mut total = 0u64;
    let mut first = true;
    loop {
        match lookup_batch(fd, s, (!first).then_some(&tin[..]), &mut tout, &mut keys, &mut values, N as u32) {
            Ok((n, more)) => {
                total += n as u64;
                if !more {
                    return Ok(total);
                }
                first = false;
                std::mem::swap(&mut tin, &mut tout);
            }
            Err(e) if first && matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTSUP) | Some(524)) => {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let mut cur = vec![0u8; s.key];
    let mut next = vec![0u8; s.key];
    let mut started = false;
    while get_next_key_fd(fd, s, started.then_some(&cur[..]), &mut next)? {
        total += 1;
        started = true;
        std::mem::swap(&mut cur, &mut next);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash map made with BPF_MAP_CREATE (needs root, as every test here does).
    fn hash_map(key: u32, value: u32) -> OwnedFd {
        let mut a: Attr = [0; 16];
        put_u32(&mut a, 0, 1); // BPF_MAP_TYPE_HASH
        put_u32(&mut a, 4, key);
        put_u32(&mut a, 8, value);
        put_u32(&mut a, 12, 8);
        owned(sys_bpf(0, &mut a).expect("BPF_MAP_CREATE (run as root)"))
    }

    #[test]
    fn buffers_shorter_than_the_map_needs_are_refused_before_the_syscall() {
        let fd = hash_map(4, 64);
        let raw = fd.as_raw_fd();
        let s = Sizes::of(raw).unwrap();
        let key = 7u32.to_ne_bytes();
        let short = |r: io::Result<()>| r.expect_err("refused").kind() == io::ErrorKind::InvalidInput;
        assert!(short(update_fd(raw, s, &key, &[0u8; 8], 0)), "an 8-byte value for a 64-byte map");
        assert!(short(update_fd(raw, s, &key[..2], &[0u8; 64], 0)));
        update_fd(raw, s, &key, &[1u8; 64], 0).unwrap();
        let mut small = [0u8; 16];
        assert!(short(lookup_fd(raw, s, &key, &mut small).map(|_| ())), "the kernel would write 64 bytes into 16");
        let mut v = [0u8; 64];
        assert!(lookup_fd(raw, s, &key, &mut v).unwrap());
        assert_eq!(v, [1u8; 64]);
        let (mut keys, mut vals, mut tok) = (vec![0u8; 4 * 8], vec![0u8; 64 * 7], vec![0u8; 8]);
        assert!(
            short(lookup_batch(raw, s, None, &mut tok, &mut keys, &mut vals, 8).map(|_| ())),
            "7 values' room for 8"
        );
        assert!(delete_batch(raw, s, &[0u8; 4], 2).1.is_some_and(|e| e.kind() == io::ErrorKind::InvalidInput));
        assert_eq!(count_entries(raw).unwrap(), 1);
    }
}
