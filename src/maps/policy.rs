//! The policy map: {endpoint, peer identity, port, protocol, direction} ->
//! allow or deny, with packet and byte counters. Deny wins over allow.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{HashMap, Map, MapData};
use serde::Serialize;

use super::{BPF_EXIST, BPF_NOEXIST, Maps, open, pod_bytes, typed};
use crate::abi::{IDENTITY_ANY, POLICY_ALLOW, PolicyKey, PolicyValue, direction_text};
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
}
