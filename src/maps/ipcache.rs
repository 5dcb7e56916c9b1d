//! The ipcache (an LPM trie: CIDR -> identity), and the identity the
//! datapath gives a peer address.

use std::net::IpAddr;
use std::path::Path;

use aya::maps::lpm_trie::Key as LpmKey;
use aya::maps::{LpmTrie, MapData};
use serde::Serialize;

use super::{Maps, addr_bytes, addr_from_bytes, any, network, open, typed};
use crate::abi::{self, IpcacheValue};
use crate::{Error, Result};

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

impl Maps {
    /// The identity a packet from or to `ip` gets, found as `peer_identity`
    /// in bpf/lib/identity.h finds it: the endpoints map first, then the
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
}
