//! Conntrack entries as operators read them: addresses, state, flags,
//! counters, age and time left; filters, flush and garbage collection.

use std::net::IpAddr;
use std::path::Path;

use aya::maps::{HashMap, MapData};
use serde::{Deserialize, Serialize};

use super::any::{AnyMap, MapSpec};
use super::{Maps, open, typed};
use crate::abi::{self, Ct4Key, Ct6Key, CtEntry};
use crate::pins::Pins;
use crate::{Error, Result, sys};

/// Which entries `list` keeps; None means any.
#[derive(Clone, Debug, Default)]
pub struct CtFilter {
    pub family: Option<u8>,
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub proto: Option<u8>,
}

/// One conntrack entry, decoded (`bpf ct list`'s entries; read back with
/// serde into the core's own words for direction, state and flags).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CtView {
    pub family: u8,
    pub proto: u8,
    #[serde(deserialize_with = "crate::words::direction")]
    pub direction: crate::words::Word,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    #[serde(deserialize_with = "crate::words::ct_state")]
    pub state: crate::words::Word,
    #[serde(deserialize_with = "crate::words::ct_flags")]
    pub flags: Vec<&'static str>,
    pub tcp_flags_fwd: u8,
    pub tcp_flags_rev: u8,
    pub packets_fwd: u64,
    pub bytes_fwd: u64,
    pub packets_rev: u64,
    pub bytes_rev: u64,
    pub src_identity: u32,
    pub lifetime_s: u32,
    pub age_s: u64,
    /// Seconds until the entry expires (negative: expired, awaiting gc or LRU).
    pub expires_in_s: i64,
}

/// Every state [`state`] gives, the words `bpf ct list` prints.
pub const STATES: &[&str] = &[NEW, ESTABLISHED, SYN_SENT, CLOSING, CLOSED];
const NEW: &str = "NEW";
const ESTABLISHED: &str = "ESTABLISHED";
const SYN_SENT: &str = "SYN_SENT";
const CLOSING: &str = "CLOSING";
const CLOSED: &str = "CLOSED";

pub fn state(proto: u8, e: &CtEntry) -> &'static str {
    let both = abi::CT_F_CLOSING_FWD | abi::CT_F_CLOSING_REV;
    let reply = e.flags & abi::CT_F_REPLY_SEEN != 0;
    if proto == 6 {
        if e.flags & both == both {
            CLOSED
        } else if e.flags & both != 0 {
            CLOSING
        } else if reply && e.flags & abi::CT_F_SEEN_NON_SYN != 0 {
            ESTABLISHED
        } else {
            SYN_SENT
        }
    } else if reply {
        ESTABLISHED
    } else {
        NEW
    }
}

/// An entry's flag bits and their names, as `bpf ct list` prints them.
pub const FLAGS: &[(u8, &str)] = &[
    (abi::CT_F_SEEN_NON_SYN, "seen_non_syn"),
    (abi::CT_F_CLOSING_FWD, "closing_fwd"),
    (abi::CT_F_CLOSING_REV, "closing_rev"),
    (abi::CT_F_REPLY_SEEN, "reply_seen"),
    (abi::CT_F_TWIN, "twin"),
];

pub fn flag_names(f: u8) -> Vec<&'static str> {
    FLAGS.iter().filter(|(bit, _)| f & bit != 0).map(|(_, name)| *name).collect()
}

fn expires_in(e: &CtEntry, now: u64) -> i64 {
    let end = e.last_seen_ns as i128 + e.lifetime_s as i128 * 1_000_000_000;
    ((end - now as i128) / 1_000_000_000) as i64
}

pub fn is_expired(e: &CtEntry, now: u64) -> bool {
    e.last_seen_ns + e.lifetime_s as u64 * 1_000_000_000 < now
}

/// The addressing half of an entry, from either key type.
struct Tuple {
    family: u8,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    dir: u8,
}

fn view(t: Tuple, e: &CtEntry, now: u64) -> CtView {
    let Tuple { family, src, dst, sport, dport, proto, dir } = t;
    CtView {
        family,
        proto,
        direction: abi::direction_text(dir),
        src,
        dst,
        sport,
        dport,
        state: state(proto, e),
        flags: flag_names(e.flags),
        tcp_flags_fwd: e.tcp_flags_fwd,
        tcp_flags_rev: e.tcp_flags_rev,
        packets_fwd: e.packets_fwd,
        bytes_fwd: e.bytes_fwd,
        packets_rev: e.packets_rev,
        bytes_rev: e.bytes_rev,
        src_identity: e.src_identity,
        lifetime_s: e.lifetime_s,
        age_s: now.saturating_sub(e.created_ns) / 1_000_000_000,
        expires_in_s: expires_in(e, now),
    }
}

/// A mirrored ABI struct from the front of `b`, which must hold it whole
/// (a table whose sizes are not ours is refused, not read past its end).
fn read<T: aya::Pod>(b: &[u8]) -> Result<T> {
    if b.len() < std::mem::size_of::<T>() {
        return Err(Error::InvalidInput(format!(
            "a conntrack entry of {} bytes where {} were expected: is this map dpdbg's?",
            b.len(),
            std::mem::size_of::<T>()
        )));
    }
    // SAFETY: T is Pod (repr(C), integers only) and b holds at least its size.
    Ok(unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) })
}

impl CtFilter {
    fn keep(&self, v: &CtView) -> bool {
        self.family.is_none_or(|f| f == v.family)
            && self.ip.is_none_or(|ip| ip == v.src || ip == v.dst)
            && self.port.is_none_or(|p| p == v.sport || p == v.dport)
            && self.proto.is_none_or(|p| p == v.proto)
    }
}

/// The two key layouts, seen as one tuple.
trait CtKey: aya::Pod {
    fn tuple(&self) -> Tuple;
}

macro_rules! ct_key {
    ($key:ty, $family:expr) => {
        impl CtKey for $key {
            fn tuple(&self) -> Tuple {
                Tuple {
                    family: $family,
                    src: IpAddr::from(self.saddr),
                    dst: IpAddr::from(self.daddr),
                    sport: self.sport,
                    dport: self.dport,
                    proto: self.proto,
                    dir: self.direction,
                }
            }
        }
    };
}

ct_key!(Ct4Key, 4);
ct_key!(Ct6Key, 6);

/// One of our conntrack tables, by its pin (never another map of the same name).
fn open_table(bpffs: &Path, name: &str) -> Result<AnyMap> {
    let pins = Pins::new(bpffs);
    pins.require_loaded()?;
    AnyMap::open(&MapSpec::Path(pins.map(name)), bpffs)
}

fn walk<K: CtKey>(
    bpffs: &Path,
    name: &str,
    filter: &CtFilter,
    now: u64,
    f: &mut impl FnMut(CtView) -> Result<()>,
) -> Result<u64> {
    let m = open_table(bpffs, name)?;
    let (ks, vs) = (m.info.key_size as usize, m.value_buf_size());
    let mut n = 0;
    m.for_each_batch(|keys, values, count| {
        for i in 0..count {
            let k: K = read(&keys[i * ks..(i + 1) * ks])?;
            let e: CtEntry = read(&values[i * vs..(i + 1) * vs])?;
            let v = view(k.tuple(), &e, now);
            if filter.keep(&v) {
                n += 1;
                f(v)?;
            }
        }
        Ok(())
    })?;
    Ok(n)
}

/// Streams matching entries of ct4 then ct6 to `f`, in batches; each view
/// is handed over, so a caller that keeps them copies nothing.
pub fn for_each(bpffs: &Path, filter: &CtFilter, mut f: impl FnMut(CtView) -> Result<()>) -> Result<u64> {
    let now = sys::monotonic_coarse_ns();
    let mut n = 0;
    if filter.family != Some(abi::FAMILY_IPV6) {
        n += walk::<Ct4Key>(bpffs, "ct4", filter, now, &mut f)?;
    }
    if filter.family != Some(abi::FAMILY_IPV4) {
        n += walk::<Ct6Key>(bpffs, "ct6", filter, now, &mut f)?;
    }
    Ok(n)
}

/// The conntrack tables held open between reads, with their batch buffers:
/// the dashboard reads ten thousand entries every second, and opening the
/// tables each time (their BTF fetched and parsed), a reading thread and
/// fresh zeroed buffers cost more than the entries themselves. A table
/// whose pin was replaced (the datapath loaded again) is opened again.
pub struct CtReader {
    pins: Pins,
    tables: Vec<Table>,
    keys: Vec<u8>,
    values: Vec<u8>,
}

struct Table {
    family: u8,
    fd: std::os::fd::OwnedFd,
    sizes: crate::syscall::Sizes,
    /// The pin's device and inode when opened: a new load pins a new file.
    pin: (u64, u64),
}

/// Entries per BPF_MAP_LOOKUP_BATCH call of a `CtReader`.
const READER_BATCH: usize = 4096;

fn pin_id(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?;
    Ok((m.dev(), m.ino()))
}

impl CtReader {
    pub fn new(bpffs: &Path) -> CtReader {
        CtReader { pins: Pins::new(bpffs), tables: Vec::new(), keys: Vec::new(), values: Vec::new() }
    }

    /// Opens (again) what is not open or was replaced since.
    fn tables(&mut self) -> Result<()> {
        self.pins.require_loaded()?;
        for (i, (name, family)) in [("ct4", abi::FAMILY_IPV4), ("ct6", abi::FAMILY_IPV6)].into_iter().enumerate() {
            let path = self.pins.map(name);
            let pin = pin_id(&path)?;
            if self.tables.get(i).is_some_and(|t| t.pin == pin) {
                continue;
            }
            let fd = crate::syscall::obj_get(&path).map_err(|e| Error::io("bpf_obj_get", &path, e))?;
            let sizes = crate::syscall::Sizes::of(std::os::fd::AsRawFd::as_raw_fd(&fd))
                .map_err(|e| Error::io("bpf_obj_get_info_by_fd", &path, e))?;
            let want =
                if family == abi::FAMILY_IPV4 { std::mem::size_of::<Ct4Key>() } else { std::mem::size_of::<Ct6Key>() };
            if sizes.key() != want || sizes.value() < std::mem::size_of::<CtEntry>() {
                return Err(Error::InvalidInput(format!(
                    "{}: keys of {} bytes and values of {} where {want} and {} were expected: is this map dpdbg's?",
                    path.display(),
                    sizes.key(),
                    sizes.value(),
                    std::mem::size_of::<CtEntry>()
                )));
            }
            let t = Table { family, fd, sizes, pin };
            if i < self.tables.len() {
                self.tables[i] = t;
            } else {
                self.tables.push(t);
            }
        }
        Ok(())
    }

    /// Hands every entry of ct4 then ct6 that `filter` keeps to `f`, as
    /// `for_each` does; returns how many.
    pub fn for_each(&mut self, filter: &CtFilter, mut f: impl FnMut(CtView)) -> Result<u64> {
        self.tables()?;
        let now = sys::monotonic_coarse_ns();
        let mut n = 0;
        for t in &self.tables {
            if filter.family.is_some_and(|fam| fam != t.family) {
                continue;
            }
            let (ks, vs) = (t.sizes.key(), t.sizes.value());
            self.keys.resize(ks * READER_BATCH, 0);
            self.values.resize(vs * READER_BATCH, 0);
            let (mut token_in, mut token_out) = (vec![0u8; ks.max(8)], vec![0u8; ks.max(8)]);
            let mut first = true;
            loop {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&t.fd);
                let (got, more) = crate::syscall::lookup_batch(
                    fd,
                    t.sizes,
                    (!first).then_some(&token_in[..]),
                    &mut token_out,
                    &mut self.keys,
                    &mut self.values,
                    READER_BATCH as u32,
                )
                .map_err(|e| Error::io("bpf_map_lookup_batch", format!("map ct{}", t.family), e))?;
                first = false;
                std::mem::swap(&mut token_in, &mut token_out);
                for i in 0..got as usize {
                    let kb = &self.keys[i * ks..(i + 1) * ks];
                    let tuple = if t.family == abi::FAMILY_IPV4 {
                        read::<Ct4Key>(kb)?.tuple()
                    } else {
                        read::<Ct6Key>(kb)?.tuple()
                    };
                    let v = view(tuple, &read::<CtEntry>(&self.values[i * vs..(i + 1) * vs])?, now);
                    if filter.keep(&v) {
                        n += 1;
                        f(v);
                    }
                }
                if !more {
                    break;
                }
            }
        }
        Ok(n)
    }
}

/// Deletes entries of both tables for which `pred(tuple, entry, now)` holds,
/// read in batches and deleted in batches; returns how many.
fn delete_where(bpffs: &Path, pred: impl Fn(&CtView, &CtEntry) -> bool) -> Result<u64> {
    let now = sys::monotonic_coarse_ns();
    let mut deleted = 0;
    for (name, family) in [("ct4", abi::FAMILY_IPV4), ("ct6", abi::FAMILY_IPV6)] {
        let m = open_table(bpffs, name)?;
        let (ks, vs) = (m.info.key_size as usize, m.value_buf_size());
        let mut doomed = Vec::new();
        m.for_each_batch(|keys, values, count| {
            for i in 0..count {
                let kb = &keys[i * ks..(i + 1) * ks];
                let e: CtEntry = read(&values[i * vs..(i + 1) * vs])?;
                let t =
                    if family == abi::FAMILY_IPV4 { read::<Ct4Key>(kb)?.tuple() } else { read::<Ct6Key>(kb)?.tuple() };
                if pred(&view(t, &e, now), &e) {
                    doomed.extend_from_slice(kb);
                }
            }
            Ok(())
        })?;
        deleted += m.delete_many(&doomed)?;
    }
    Ok(deleted)
}

/// Removes every conntrack entry.
pub fn flush(bpffs: &Path) -> Result<u64> {
    delete_where(bpffs, |_, _| true)
}

/// Removes expired entries. The datapath already treats them as absent;
/// this returns their room (the LRU would evict them only under pressure).
pub fn gc(bpffs: &Path) -> Result<u64> {
    let now = sys::monotonic_coarse_ns();
    delete_where(bpffs, |_, e| is_expired(e, now))
}

/// Removes the entries of an endpoint that is going away: those opened on
/// its interface for one of its addresses. Tracked packets skip the endpoint
/// lookup, so without this its connections would outlive it.
pub fn delete_endpoint(bpffs: &Path, ifindex: u32, ips: &[IpAddr]) -> Result<u64> {
    delete_where(bpffs, |v, e| {
        let ep_addr = if v.direction == "egress" { v.src } else { v.dst };
        e.ifindex == ifindex && ips.contains(&ep_addr)
    })
}

/// Writes the entry as one JSON object, by hand: the dump of a million
/// entries is bound by this function.
pub fn write_json(out: &mut Vec<u8>, v: &CtView) {
    use std::io::Write;
    let mut ib = itoa::Buffer::new();
    let mut num = |out: &mut Vec<u8>, k: &str, n: u64| {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(ib.format(n).as_bytes());
    };
    out.extend_from_slice(b"{\"family\":");
    out.extend_from_slice(if v.family == 4 { b"4" } else { b"6" });
    num(out, ",\"proto\":", v.proto as u64);
    out.extend_from_slice(b",\"direction\":\"");
    out.extend_from_slice(v.direction.as_bytes());
    out.extend_from_slice(b"\",\"src\":\"");
    let _ = write!(out, "{}", v.src);
    out.extend_from_slice(b"\",\"dst\":\"");
    let _ = write!(out, "{}", v.dst);
    out.push(b'"');
    num(out, ",\"sport\":", v.sport as u64);
    num(out, ",\"dport\":", v.dport as u64);
    out.extend_from_slice(b",\"state\":\"");
    out.extend_from_slice(v.state.as_bytes());
    out.extend_from_slice(b"\",\"flags\":[");
    for (i, f) in v.flags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(f.as_bytes());
        out.push(b'"');
    }
    out.push(b']');
    num(out, ",\"tcp_flags_fwd\":", v.tcp_flags_fwd as u64);
    num(out, ",\"tcp_flags_rev\":", v.tcp_flags_rev as u64);
    num(out, ",\"packets_fwd\":", v.packets_fwd);
    num(out, ",\"bytes_fwd\":", v.bytes_fwd);
    num(out, ",\"packets_rev\":", v.packets_rev);
    num(out, ",\"bytes_rev\":", v.bytes_rev);
    num(out, ",\"src_identity\":", v.src_identity as u64);
    num(out, ",\"lifetime_s\":", v.lifetime_s as u64);
    num(out, ",\"age_s\":", v.age_s);
    out.extend_from_slice(b",\"expires_in_s\":");
    out.extend_from_slice(itoa::Buffer::new().format(v.expires_in_s).as_bytes());
    out.push(b'}');
}

impl Maps {
    pub fn ct4_list(&self) -> Result<Vec<(Ct4Key, CtEntry)>> {
        let m: HashMap<MapData, Ct4Key, CtEntry> = typed("ct4", HashMap::try_from(open(&self.pins, "ct4")?))?;
        m.iter().collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::bpf("map ct4", e))
    }

    pub fn ct6_list(&self) -> Result<Vec<(Ct6Key, CtEntry)>> {
        let m: HashMap<MapData, Ct6Key, CtEntry> = typed("ct6", HashMap::try_from(open(&self.pins, "ct6")?))?;
        m.iter().collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::bpf("map ct6", e))
    }
}
