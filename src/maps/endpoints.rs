//! The endpoints map: IP address -> endpoint (id, identity, interface, MAC,
//! enforcement flags).

use std::net::IpAddr;

use aya::maps::{HashMap, MapData};
use serde::Serialize;

use super::{BPF_EXIST, Maps, addr_bytes, addr_from_bytes, open, typed};
use crate::abi::{EP_ENFORCE_EGRESS, EP_ENFORCE_INGRESS, EndpointInfo, EndpointKey, IDENTITY_ANY};
use crate::{Error, Result};

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

impl Endpoint {
    /// The directions policy is enforced in, in the words `bpf endpoint add
    /// --enforce` takes: `none`, `ingress`, `egress` or `both`.
    pub fn enforcement(&self) -> &'static str {
        match (self.enforce_ingress, self.enforce_egress) {
            (true, true) => "both",
            (true, false) => "ingress",
            (false, true) => "egress",
            (false, false) => "none",
        }
    }
}

impl Maps {
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
}
