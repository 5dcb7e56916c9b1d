//! Names for people: the labels of each identity (`identities`) and the
//! namespace/pod of each endpoint (`endpoint_names`), pinned beside the
//! datapath's maps so every command, `serve` and `--server` see the same,
//! and removed with it. The programs never read them: a name costs the
//! datapath nothing. Readers take both maps in one pass per refresh
//! (`Names::read`), never per event.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use aya::maps::{HashMap as BpfHash, MapData};
use serde::{Deserialize, Serialize};

use super::{Maps, open, typed};
use crate::abi::{self, CText, EndpointName, IdentityLabels};
use crate::{Error, Result};

/// The labels of the reserved identities, as cilium-dbg and Hubble show them.
pub fn reserved_labels(identity: u32) -> Option<&'static str> {
    match identity {
        abi::IDENTITY_HOST => Some("reserved:host"),
        abi::IDENTITY_WORLD => Some("reserved:world"),
        _ => None,
    }
}

/// The reserved identities' names, as Hubble prints them in place of an id.
pub fn reserved_name(identity: u32) -> Option<&'static str> {
    match identity {
        abi::IDENTITY_HOST => Some("host"),
        abi::IDENTITY_WORLD => Some("world"),
        _ => None,
    }
}

/// A label with its source, as cilium writes it: `k8s:app=web` for a label
/// given as `app=web`; one with a source already keeps it.
pub fn with_source(label: &str) -> String {
    let key = label.split_once('=').map_or(label, |(k, _)| k);
    if key.contains(':') { label.to_string() } else { format!("k8s:{label}") }
}

/// One identity and its labels (with their sources).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub id: u32,
    pub labels: Vec<String>,
}

/// An endpoint's Kubernetes name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct PodName {
    pub namespace: String,
    pub pod: String,
}

impl std::fmt::Display for PodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.pod)
    }
}

/// Checks a Kubernetes label `key=value`: the key an optional DNS-subdomain
/// prefix and '/', then a name of at most 63 characters; the value empty or
/// at most 63; names and values start and end with a letter or digit and
/// hold only letters, digits, '-', '_' and '.'.
pub fn check_label(label: &str) -> std::result::Result<(), String> {
    let Some((key, value)) = label.split_once('=') else {
        return Err(format!("label {label:?}: give KEY=VALUE, like app=web"));
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    };
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && check_subdomain(p).is_err()
    {
        return Err(format!("label {label:?}: the key's prefix {p:?} is not a DNS subdomain (like example.com)"));
    }
    if !name_ok(name) {
        return Err(format!(
            "label {label:?}: the key's name {name:?} is not a Kubernetes label name (1-63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
        ));
    }
    if !value.is_empty() && !name_ok(value) {
        return Err(format!(
            "label {label:?}: the value {value:?} is not a Kubernetes label value (at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// Checks an RFC 1123 subdomain (a pod name, a label prefix).
pub fn check_subdomain(s: &str) -> std::result::Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && l.as_bytes()[0].is_ascii_alphanumeric()
            && l.as_bytes()[l.len() - 1].is_ascii_alphanumeric()
    };
    if s.is_empty() || s.len() > 253 || !s.split('.').all(label_ok) {
        return Err(format!(
            "{s:?} is not an RFC 1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)"
        ));
    }
    Ok(())
}

/// Parses `NAMESPACE/POD` as Kubernetes names them.
pub fn parse_pod_name(s: &str) -> std::result::Result<PodName, String> {
    let Some((ns, pod)) = s.split_once('/') else {
        return Err(format!("{s:?}: give NAMESPACE/POD, like lab/ep1"));
    };
    let ns_ok = !ns.is_empty()
        && ns.len() <= 63
        && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && ns.as_bytes()[0].is_ascii_alphanumeric()
        && ns.as_bytes()[ns.len() - 1].is_ascii_alphanumeric();
    if !ns_ok {
        return Err(format!(
            "{s:?}: the namespace {ns:?} is not an RFC 1123 label (lowercase letters, digits, '-', at most 63)"
        ));
    }
    check_subdomain(pod).map_err(|e| format!("{s:?}: the pod name {e}"))?;
    Ok(PodName { namespace: ns.to_string(), pod: pod.to_string() })
}

/// Everything a refresh of names reads, in one pass over the maps.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Names {
    /// Endpoint id -> its pod.
    pub pods: HashMap<u32, PodName>,
    /// Identity -> its labels (with their sources).
    pub labels: HashMap<u32, Vec<String>>,
    /// Endpoint address -> endpoint id: the remote side of a flow is named
    /// by its address.
    pub endpoints: HashMap<IpAddr, u32>,
}

impl Names {
    /// The labels of `identity`, the reserved ones included.
    pub fn labels_of(&self, identity: u32) -> Vec<String> {
        match reserved_labels(identity) {
            Some(l) => vec![l.to_string()],
            None => self.labels.get(&identity).cloned().unwrap_or_default(),
        }
    }

    /// The pod of the endpoint that owns `ip`.
    pub fn pod_at(&self, ip: IpAddr) -> Option<&PodName> {
        self.endpoints.get(&ip).and_then(|id| self.pods.get(id))
    }

    /// The endpoint named `pod` (the lowest id, should two share a name).
    pub fn endpoint_named(&self, pod: &PodName) -> Option<u32> {
        self.pods.iter().filter(|(_, p)| *p == pod).map(|(id, _)| *id).min()
    }
}

impl Maps {
    fn identities(&self) -> Result<BpfHash<MapData, u32, IdentityLabels>> {
        typed("identities", BpfHash::try_from(open(&self.pins, "identities")?))
    }

    fn endpoint_names(&self) -> Result<BpfHash<MapData, u32, EndpointName>> {
        typed("endpoint_names", BpfHash::try_from(open(&self.pins, "endpoint_names")?))
    }

    /// Every identity with labels (the reserved ones first), by id.
    pub fn identity_list(&self) -> Result<Vec<Identity>> {
        let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for id in [abi::IDENTITY_HOST, abi::IDENTITY_WORLD] {
            out.insert(id, reserved_labels(id).into_iter().map(String::from).collect());
        }
        for r in self.identities()?.iter() {
            let (id, v) = typed("identities", r)?;
            out.insert(id, split_labels(&v.labels.as_str()));
        }
        Ok(out.into_iter().map(|(id, labels)| Identity { id, labels }).collect())
    }

    /// One identity's labels; None when it has none stored and is not reserved.
    pub fn identity_get(&self, id: u32) -> Result<Option<Identity>> {
        if let Some(l) = reserved_labels(id) {
            return Ok(Some(Identity { id, labels: vec![l.to_string()] }));
        }
        match self.identities()?.get(&id, 0) {
            Ok(v) => Ok(Some(Identity { id, labels: split_labels(&v.labels.as_str()) })),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => typed("identities", Err(e)),
        }
    }

    /// Sets an identity's labels (each `key=value`, checked as Kubernetes
    /// checks them); refused when they do not fit, never cut.
    pub fn identity_set(&self, id: u32, labels: &[String]) -> Result<()> {
        if id < 256 {
            return Err(Error::ReservedIdentity { id });
        }
        for l in labels {
            check_label(l).map_err(|why| Error::BadLabel { label: l.clone(), why })?;
        }
        let joined = labels.join(",");
        let text = CText::new(&joined).ok_or_else(|| Error::TooLong {
            what: format!("the labels of identity {id} (joined by ',')"),
            len: joined.len(),
            max: abi::LABELS_LEN - 1,
        })?;
        typed("identities", self.identities()?.insert(id, IdentityLabels { labels: text }, 0))
    }

    /// Removes an identity's labels; false when it had none.
    pub fn identity_delete(&self, id: u32) -> Result<bool> {
        match self.identities()?.remove(&id) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => typed("identities", Err(e)),
        }
    }

    /// The pod name of an endpoint, if it has one.
    pub fn endpoint_name(&self, id: u32) -> Result<Option<PodName>> {
        match self.endpoint_names()?.get(&id, 0) {
            Ok(v) => Ok(Some(pod_name(&v))),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => typed("endpoint_names", Err(e)),
        }
    }

    /// Names an endpoint; refused when the name does not fit, never cut.
    pub fn endpoint_name_set(&self, id: u32, name: &PodName) -> Result<()> {
        let too_long = |what: &str, text: &str, max: usize| Error::TooLong {
            what: format!("the {what} of {name}"),
            len: text.len(),
            max,
        };
        let v = EndpointName {
            namespace: CText::new(&name.namespace)
                .ok_or_else(|| too_long("namespace", &name.namespace, abi::NAMESPACE_LEN - 1))?,
            pod: CText::new(&name.pod).ok_or_else(|| too_long("pod name", &name.pod, abi::POD_LEN - 1))?,
        };
        typed("endpoint_names", self.endpoint_names()?.insert(id, v, 0))
    }

    /// Forgets an endpoint's name (with the endpoint).
    pub fn endpoint_name_delete(&self, id: u32) -> Result<()> {
        match self.endpoint_names()?.remove(&id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => typed("endpoint_names", Err(e)),
        }
    }

    /// Every name at once, for a refresh: three map reads, whatever the
    /// number of flows named with them.
    pub fn names(&self) -> Result<Names> {
        let mut n = Names::default();
        for r in self.endpoint_names()?.iter() {
            let (id, v) = typed("endpoint_names", r)?;
            n.pods.insert(id, pod_name(&v));
        }
        for r in self.identities()?.iter() {
            let (id, v) = typed("identities", r)?;
            n.labels.insert(id, split_labels(&v.labels.as_str()));
        }
        for e in self.endpoint_list()? {
            n.endpoints.insert(e.ip, e.endpoint_id);
        }
        Ok(n)
    }
}

fn pod_name(v: &EndpointName) -> PodName {
    PodName { namespace: v.namespace.as_str().into_owned(), pod: v.pod.as_str().into_owned() }
}

/// The stored "k=v,k=v" as labels with their sources.
fn split_labels(s: &str) -> Vec<String> {
    s.split(',').filter(|l| !l.is_empty()).map(with_source).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_as_kubernetes_takes_them() {
        for ok in ["app=web", "app=", "app.kubernetes.io/name=web", "k8s-app=kube-dns", "a=b.c_d-e"] {
            assert!(check_label(ok).is_ok(), "{ok}");
        }
        for bad in ["app", "=web", "app=-web", "app=web!", "Bad_Prefix/app=x", &format!("a={}", "x".repeat(64))] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
        assert_eq!(with_source("app=web"), "k8s:app=web");
        assert_eq!(with_source("reserved:host"), "reserved:host");
        assert_eq!(parse_pod_name("lab/ep1").unwrap().to_string(), "lab/ep1");
        assert!(parse_pod_name("lab").is_err());
        assert!(parse_pod_name("Lab/ep1").is_err());
        assert!(parse_pod_name("lab/ep_1").is_err());
        assert!(CText::<4>::new("abcd").is_none(), "never cut: 4 bytes need 5 with the NUL");
    }
}
