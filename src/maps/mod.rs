//! Typed access to the datapath's pinned maps: one file per map (aya's
//! shape), each adding its methods to `Maps`; the helpers they share are
//! here.

pub mod any;
pub mod ct;
mod endpoints;
mod ipcache;
mod metrics;
pub mod names;
mod policy;
pub mod scrape;
pub mod watch;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData};

pub use endpoints::Endpoint;
pub use ipcache::{IdentitySource, IpcacheEntry, PeerIdentity};
pub use metrics::Metric;
pub use names::{Identity, Names, PodName};
pub use policy::{PolicyAdd, PolicyRule, action_text, describe_rule};

use crate::abi::{FAMILY_IPV4, FAMILY_IPV6};
use crate::pins::Pins;
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

/// The datapath's maps under one bpffs.
pub struct Maps {
    pins: Pins,
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
}
