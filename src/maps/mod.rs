//! Typed access to the datapath's pinned maps.

pub mod any;
pub mod ct;
pub mod watch;

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::Key as LpmKey;
use aya::maps::{HashMap, LpmTrie, Map, MapData, PerCpuArray};
use serde::Serialize;

use crate::abi::{self, *};
use crate::pins::Pins;
use crate::syscall as raw;
use crate::{Error, Result, sys};

fn open(pins: &Pins, name: &str) -> Result<Map> {
    let path = pins.map(name);
    if !path.exists() {
        return Err(Error::NotLoaded { dir: pins.root().to_path_buf() });
    }
    let data = MapData::from_pin(&path).map_err(|e| Error::bpf(format!("opening map {}", path.display()), e))?;
    Map::from_map_data(data).map_err(|e| Error::bpf(format!("opening map {}", path.display()), e))
}

fn typed<T, E>(name: &str, r: std::result::Result<T, E>) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    r.map_err(|e| Error::bpf(format!("map {name}"), e))
}

/// Converts an IP into the 16-byte address field and family of our keys.
pub fn addr_bytes(ip: IpAddr) -> ([u8; 16], u8) {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            a[..4].copy_from_slice(&v4.octets());
            (a, FAMILY_IPV4)
        }
        IpAddr::V6(v6) => (v6.octets(), FAMILY_IPV6),
    }
}

/// `ip` with the bits past `prefix_len` cleared: the network of a CIDR.
pub fn network(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if prefix_len == 0 { 0 } else { u32::MAX << (32 - prefix_len.min(32) as u32) };
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = if prefix_len == 0 { 0 } else { u128::MAX << (128 - prefix_len.min(128) as u32) };
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    }
}

pub fn addr_from_bytes(a: &[u8; 16], family: u8) -> IpAddr {
    if family == FAMILY_IPV4 { IpAddr::from([a[0], a[1], a[2], a[3]]) } else { IpAddr::from(*a) }
}

const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// The bytes of a mirrored ABI struct, as the kernel stores them.
fn pod_bytes<T: aya::Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod (repr(C), integers and byte arrays, no padding).
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// A rule in the words `bpf policy get` uses.
pub fn describe_rule(k: &PolicyKey) -> String {
    let peer = if k.identity == IDENTITY_ANY { "any identity".to_string() } else { format!("identity {}", k.identity) };
    let l4 = match (k.proto, k.dport) {
        (0, _) => "any protocol".to_string(),
        (p, 0) => format!("protocol {p}"),
        (p, d) => format!("port {d}/{p}"),
    };
    format!("endpoint {} {} from {peer}, {l4}", k.endpoint_id, direction_text(k.direction))
}

/// What `policy_add` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAdd {
    /// The rule is new.
    Added,
    /// The same rule was already there; it and its counters are kept.
    Unchanged,
    /// A deny replaced an allow for the same key.
    Replaced,
}

/// The datapath's maps under one bpffs.
pub struct Maps {
    pins: Pins,
}

/// One endpoint as the endpoints map holds it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub endpoint_id: u32,
    pub identity: u32,
    pub ifindex: u32,
    pub mac: String,
    pub enforce_ingress: bool,
    pub enforce_egress: bool,
}

/// One ipcache entry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IpcacheEntry {
    pub cidr: String,
    pub identity: u32,
}

/// Where a peer's identity comes from, in the order the datapath looks.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum IdentitySource {
    /// The address is a local endpoint's.
    Endpoint { endpoint_id: u32, ifindex: u32 },
    /// The longest ipcache prefix holding the address.
    Ipcache { cidr: String },
    /// Neither: the reserved identity world.
    World,
}

/// The identity the datapath gives a peer address, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeerIdentity {
    pub ip: IpAddr,
    pub identity: u32,
    #[serde(flatten)]
    pub source: IdentitySource,
}

/// One metrics row, summed over CPUs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Metric {
    pub reason: u8,
    pub reason_text: &'static str,
    pub direction: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

impl Maps {
    pub fn open(bpffs: &Path) -> Result<Maps> {
        sys::require_bpffs(bpffs)?;
        let pins = Pins::new(bpffs);
        pins.require_loaded()?;
        Ok(Maps { pins })
    }

    pub fn pin_path(&self, name: &str) -> PathBuf {
        self.pins.map(name)
    }

    fn endpoints(&self) -> Result<HashMap<MapData, EndpointKey, EndpointInfo>> {
        typed("endpoints", HashMap::try_from(open(&self.pins, "endpoints")?))
    }

    pub fn endpoint_upsert(&self, ip: IpAddr, info: EndpointInfo) -> Result<()> {
        let (addr, family) = addr_bytes(ip);
        let mut m = self.endpoints()?;
        typed("endpoints", m.insert(EndpointKey { addr, family, pad: [0; 3] }, info, 0))
    }

    /// Changes the enforcement flags and/or identity of every address of
    /// endpoint `id`, each in place (BPF_EXIST: an address deleted meanwhile
    /// is not brought back). Returns the addresses changed; none when the
    /// endpoint does not exist. The values are checked before any write.
    pub fn endpoint_set(&self, id: u32, flags: Option<u16>, identity: Option<u32>) -> Result<Vec<IpAddr>> {
        if identity == Some(IDENTITY_ANY) {
            return Err(Error::InvalidInput("identity 0 is not an identity (it means \"any\" in policy)".into()));
        }
        let m = self.endpoints()?;
        let mut mine = Vec::new();
        for r in m.iter() {
            let (k, v) = typed("endpoints", r)?;
            if v.endpoint_id == id {
                mine.push((k, v));
            }
        }
        let mut m = m;
        let mut changed = Vec::new();
        for (k, mut v) in mine {
            if let Some(f) = flags {
                v.flags = (v.flags & !(EP_ENFORCE_INGRESS | EP_ENFORCE_EGRESS)) | f;
            }
            if let Some(i) = identity {
                v.identity = i;
            }
            typed("endpoints", m.insert(k, v, BPF_EXIST))?;
            changed.push(addr_from_bytes(&k.addr, k.family));
        }
        Ok(changed)
    }

    pub fn endpoint_delete(&self, ip: IpAddr) -> Result<()> {
        let (addr, family) = addr_bytes(ip);
        let mut m = self.endpoints()?;
        typed("endpoints", m.remove(&EndpointKey { addr, family, pad: [0; 3] }))
    }

    pub fn endpoint_list(&self) -> Result<Vec<Endpoint>> {
        let m = self.endpoints()?;
        let mut out = Vec::new();
        for r in m.iter() {
            let (k, v) = typed("endpoints", r)?;
            out.push(Endpoint {
                ip: addr_from_bytes(&k.addr, k.family),
                endpoint_id: v.endpoint_id,
                identity: v.identity,
                ifindex: v.ifindex,
                mac: v.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
                enforce_ingress: v.flags & EP_ENFORCE_INGRESS != 0,
                enforce_egress: v.flags & EP_ENFORCE_EGRESS != 0,
            });
        }
        out.sort_by_key(|e| (e.endpoint_id, e.ip));
        Ok(out)
    }

    fn policy(&self) -> Result<HashMap<MapData, PolicyKey, PolicyValue>> {
        typed("policy", HashMap::try_from(open(&self.pins, "policy")?))
    }

    /// Adds a rule. Deny wins over allow for the same key: an allow where a
    /// deny is refused (PolicyConflict); a deny where an allow is replaces
    /// it; a rule identical to one present keeps that one and its counters.
    /// Every step is one map operation with the kernel's own flags (create
    /// only if absent, replace only if present), so concurrent adds of an
    /// allow and a deny for one key always end with the deny.
    pub fn policy_add(&self, key: PolicyKey, action: u8) -> Result<PolicyAdd> {
        let m = open(&self.pins, "policy")?;
        let data = match &m {
            Map::HashMap(d) => d,
            _ => return Err(Error::InvalidInput("map policy is not a hash map".into())),
        };
        let fd = data.fd().as_fd().as_raw_fd();
        let sizes = raw::Sizes::of(fd).map_err(|e| Error::bpf("map policy", e))?;
        let kb = pod_bytes(&key);
        let value = PolicyValue { action, ..Default::default() };
        let vb = pod_bytes(&value);
        let what = || format!("map policy, rule {}", describe_rule(&key));
        // A bounded retry: each round is lost only to a concurrent delete.
        for _ in 0..16 {
            match raw::update_fd(fd, sizes, kb, vb, BPF_NOEXIST) {
                Ok(()) => return Ok(PolicyAdd::Added),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(Error::bpf(what(), e)),
            }
            let mut cur = [0u8; std::mem::size_of::<PolicyValue>()];
            if !raw::lookup_fd(fd, sizes, kb, &mut cur).map_err(|e| Error::bpf(what(), e))? {
                continue;
            }
            let existing = cur[0];
            if existing == action {
                return Ok(PolicyAdd::Unchanged);
            }
            if action == POLICY_ALLOW {
                return Err(Error::PolicyConflict { rule: describe_rule(&key) });
            }
            match raw::update_fd(fd, sizes, kb, vb, BPF_EXIST) {
                Ok(()) => return Ok(PolicyAdd::Replaced),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(Error::bpf(what(), e)),
            }
        }
        Err(Error::bpf(what(), "the rule kept changing under us (16 tries): is another writer racing?"))
    }

    pub fn policy_delete(&self, key: PolicyKey) -> Result<()> {
        let mut m = self.policy()?;
        typed("policy", m.remove(&key))
    }

    pub fn policy_list(&self) -> Result<Vec<(PolicyKey, PolicyValue)>> {
        let m = self.policy()?;
        let mut out = m.iter().collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::bpf("map policy", e))?;
        out.sort_by_key(|(k, _)| (k.endpoint_id, k.direction, k.identity, k.proto, k.dport));
        Ok(out)
    }

    pub fn ct4_list(&self) -> Result<Vec<(Ct4Key, CtEntry)>> {
        let m: HashMap<MapData, Ct4Key, CtEntry> = typed("ct4", HashMap::try_from(open(&self.pins, "ct4")?))?;
        m.iter().collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::bpf("map ct4", e))
    }

    pub fn ct6_list(&self) -> Result<Vec<(Ct6Key, CtEntry)>> {
        let m: HashMap<MapData, Ct6Key, CtEntry> = typed("ct6", HashMap::try_from(open(&self.pins, "ct6")?))?;
        m.iter().collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::bpf("map ct6", e))
    }

    /// The identity a packet from or to `ip` gets, found as `peer_identity`
    /// in bpf/datapath.c finds it: the endpoints map first, then the
    /// ipcache's longest prefix (the kernel's own LPM lookup), else world.
    pub fn identity_of(&self, ip: IpAddr) -> Result<PeerIdentity> {
        if let Some(e) = self.endpoint_list()?.into_iter().find(|e| e.ip == ip) {
            return Ok(PeerIdentity {
                ip,
                identity: e.identity,
                source: IdentitySource::Endpoint { endpoint_id: e.endpoint_id, ifindex: e.ifindex },
            });
        }
        let full = if ip.is_ipv4() { 32 } else { 128 };
        let key = Self::ipcache_key(ip, full)?;
        let m: LpmTrie<MapData, [u8; 20], IpcacheValue> =
            typed("ipcache", LpmTrie::try_from(open(&self.pins, "ipcache")?))?;
        let v = match m.get(&key, 0) {
            Ok(v) => v,
            Err(aya::maps::MapError::KeyNotFound) => {
                return Ok(PeerIdentity { ip, identity: abi::IDENTITY_WORLD, source: IdentitySource::World });
            }
            Err(e) => return typed("ipcache", Err(e)),
        };
        // The trie says which identity, not which prefix: the longest listed
        // prefix holding the address is the one it matched.
        let cidr = self
            .ipcache_list()?
            .into_iter()
            .filter(|e| e.identity == v.identity)
            .filter_map(|e| {
                let (net, len) = e.cidr.split_once('/')?;
                let (net, len) = (net.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?);
                (net.is_ipv4() == ip.is_ipv4() && network(ip, len) == net).then_some((len, e.cidr))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, c)| c)
            .unwrap_or_default();
        Ok(PeerIdentity { ip, identity: v.identity, source: IdentitySource::Ipcache { cidr } })
    }

    pub fn ipcache_upsert(&self, ip: IpAddr, prefix_len: u8, identity: u32) -> Result<()> {
        let key = Self::ipcache_key(ip, prefix_len)?;
        let mut m: LpmTrie<MapData, [u8; 20], IpcacheValue> =
            typed("ipcache", LpmTrie::try_from(open(&self.pins, "ipcache")?))?;
        typed("ipcache", m.insert(&key, IpcacheValue { identity, flags: 0 }, 0))
    }

    fn ipcache_key(ip: IpAddr, prefix_len: u8) -> Result<LpmKey<[u8; 20]>> {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(Error::InvalidInput(format!("prefix length /{prefix_len} is too long for {ip}")));
        }
        let net = network(ip, prefix_len);
        if net != ip {
            return Err(Error::InvalidInput(format!(
                "{ip}/{prefix_len} has host bits set: the network with that prefix is {net}/{prefix_len}"
            )));
        }
        let (addr, family) = addr_bytes(ip);
        let mut data = [0u8; 20];
        data[0] = family;
        data[4..].copy_from_slice(&addr);
        Ok(LpmKey::new(32 + prefix_len as u32, data))
    }

    /// Removes a CIDR; Ok(false) when it was not there.
    pub fn ipcache_delete(&self, ip: IpAddr, prefix_len: u8) -> Result<bool> {
        let key = Self::ipcache_key(ip, prefix_len)?;
        let mut raw_key = Vec::with_capacity(24);
        raw_key.extend_from_slice(&key.prefix_len().to_ne_bytes());
        raw_key.extend_from_slice(&key.data());
        let m = any::AnyMap::open(&any::MapSpec::Path(self.pins.map("ipcache")), Path::new("/"))?;
        m.delete(&raw_key)
    }

    /// Every CIDR in the ipcache, with its identity.
    pub fn ipcache_list(&self) -> Result<Vec<IpcacheEntry>> {
        let m = any::AnyMap::open(&any::MapSpec::Path(self.pins.map("ipcache")), Path::new("/"))?;
        let mut out = Vec::new();
        m.for_each_batch(|keys, values, n| {
            for i in 0..n {
                let k = &keys[i * 24..(i + 1) * 24];
                let v = &values[i * 8..(i + 1) * 8];
                let prefixlen = u32::from_ne_bytes([k[0], k[1], k[2], k[3]]);
                let mut addr = [0u8; 16];
                addr.copy_from_slice(&k[8..24]);
                let ip = addr_from_bytes(&addr, k[4]);
                out.push(IpcacheEntry {
                    cidr: format!("{ip}/{}", prefixlen.saturating_sub(32)),
                    identity: u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
                });
            }
            Ok(())
        })?;
        out.sort_by(|a, b| a.cidr.cmp(&b.cidr));
        Ok(out)
    }

    /// Adds `n` to a counter user space keeps in the metrics map beside the
    /// datapath's (event records a reader could not decode), so `datapath
    /// status` and `bpf metrics list` show it whoever read the events.
    pub fn count_in_metrics(&self, reason: Reason, n: u64) -> Result<()> {
        let mut m: PerCpuArray<MapData, MetricsValue> =
            typed("metrics", PerCpuArray::try_from(open(&self.pins, "metrics")?))?;
        let idx = reason.0 as u32 * 2;
        let vals = typed("metrics", m.get(&idx, 0))?;
        // The datapath never writes this slot: the read-modify-write races no one.
        let mut all: Vec<MetricsValue> = vals.iter().copied().collect();
        if let Some(v) = all.first_mut() {
            v.packets = v.packets.saturating_add(n);
        }
        let vals = aya::maps::PerCpuValues::try_from(all).map_err(|e| Error::bpf("map metrics", e))?;
        typed("metrics", m.set(idx, vals, 0))
    }

    /// Metrics with at least one packet, summed over CPUs.
    pub fn metrics(&self) -> Result<Vec<Metric>> {
        let m: PerCpuArray<MapData, MetricsValue> =
            typed("metrics", PerCpuArray::try_from(open(&self.pins, "metrics")?))?;
        let mut out = Vec::new();
        for idx in 0..abi::METRICS_MAX {
            let vals = typed("metrics", m.get(&idx, 0))?;
            // Saturating: counters near the top must not wrap to small numbers when summed.
            let (packets, bytes) =
                vals.iter().fold((0u64, 0u64), |(p, b), v| (p.saturating_add(v.packets), b.saturating_add(v.bytes)));
            if packets > 0 {
                let reason = Reason((idx / 2) as u8);
                out.push(Metric {
                    reason: reason.0,
                    reason_text: reason.text(),
                    direction: direction_text((idx % 2) as u8),
                    packets,
                    bytes,
                });
            }
        }
        Ok(out)
    }
}
