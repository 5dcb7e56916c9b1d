//! The policy map: {endpoint, peer identity, port, protocol, direction} ->
//! allow or deny, with packet and byte counters. Deny wins over allow.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{HashMap, Map, MapData};
use serde::{Deserialize, Serialize};

use super::{BPF_EXIST, BPF_NOEXIST, Maps, open, pod_bytes, typed};
use crate::abi::{
    DIR_EGRESS, DIR_INGRESS, IDENTITY_ANY, POLICY_ALLOW, POLICY_DENY, PolicyKey, PolicyValue, direction_text,
};
use crate::syscall as raw;
use crate::{Error, Result};

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

/// A rule's action in words: `allow` or `deny`.
pub fn action_text(action: u8) -> &'static str {
    if action == POLICY_DENY { "deny" } else { "allow" }
}

/// A rule with its counters, as `bpf policy get` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    pub endpoint_id: u32,
    #[serde(deserialize_with = "crate::words::direction")]
    pub direction: crate::words::Word,
    /// 0: any identity.
    pub identity: u32,
    /// 0: any port.
    pub port: u16,
    /// 0: any protocol.
    pub proto: u8,
    #[serde(deserialize_with = "crate::words::policy_action")]
    pub action: crate::words::Word,
    pub packets: u64,
    pub bytes: u64,
}

impl PolicyRule {
    pub fn new(k: &PolicyKey, v: &PolicyValue) -> PolicyRule {
        PolicyRule {
            endpoint_id: k.endpoint_id,
            direction: direction_text(k.direction),
            identity: k.identity,
            port: k.dport,
            proto: k.proto,
            action: action_text(v.action),
            packets: v.packets,
            bytes: v.bytes,
        }
    }

    /// The map's key and value the rule was read from.
    pub fn entry(&self) -> (PolicyKey, PolicyValue) {
        let direction = if self.direction == direction_text(DIR_EGRESS) { DIR_EGRESS } else { DIR_INGRESS };
        let action = if self.action == action_text(POLICY_DENY) { POLICY_DENY } else { POLICY_ALLOW };
        (
            PolicyKey {
                endpoint_id: self.endpoint_id,
                identity: self.identity,
                dport: self.port,
                proto: self.proto,
                direction,
            },
            PolicyValue { action, packets: self.packets, bytes: self.bytes, ..PolicyValue::default() },
        )
    }
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

impl Maps {
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

    /// Every rule with its counters, in [`Maps::policy_list`]'s order.
    pub fn policy_rules(&self) -> Result<Vec<PolicyRule>> {
        Ok(self.policy_list()?.iter().map(|(k, v)| PolicyRule::new(k, v)).collect())
    }
}
