//! Endpoints named the operator's way on the command line: an endpoint id
//! or `NAMESPACE/POD` (the names `bpf endpoint add|set --name` gives), for
//! every argument that takes an endpoint (monitor's --from/--to/--related-to,
//! trace's --from/--to, `bpf endpoint get|set|delete`, `bpf policy`'s
//! endpoint); and the names shown beside ids in tables.

use std::fmt;

use dpdbg::maps::{Names, PodName};

/// An endpoint as a flag gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointRef {
    Id(u32),
    Pod(PodName),
}

impl fmt::Display for EndpointRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointRef::Id(id) => write!(f, "{id}"),
            EndpointRef::Pod(p) => write!(f, "{p}"),
        }
    }
}

/// An endpoint id, or `NAMESPACE/POD` as Kubernetes names them.
pub fn parse_endpoint(s: &str) -> Result<EndpointRef, String> {
    if let Ok(id) = s.trim().parse::<u32>() {
        return Ok(EndpointRef::Id(id));
    }
    if !s.contains('/') {
        return Err(format!("{s:?}: an endpoint id (101) or NAMESPACE/POD (lab/ep1)"));
    }
    dpdbg::maps::names::parse_pod_name(s).map(EndpointRef::Pod)
}

impl EndpointRef {
    /// The endpoint's id, through the names read from the datapath.
    pub fn resolve(&self, names: &Names) -> Option<u32> {
        match self {
            EndpointRef::Id(id) => Some(*id),
            EndpointRef::Pod(p) => names.endpoint_named(p),
        }
    }

    pub fn is_pod(&self) -> bool {
        matches!(self, EndpointRef::Pod(_))
    }
}

/// Every endpoint of a flag's list as an id; a name no endpoint has is an
/// error naming the flag and the name.
pub fn resolve_all(list: &[EndpointRef], names: &Names, flag: &str) -> anyhow::Result<Vec<u32>> {
    list.iter()
        .map(|e| {
            e.resolve(names).ok_or_else(|| {
                anyhow::anyhow!("{flag} {e}: no endpoint has that name (`dpdbg bpf endpoint list` shows the names)")
            })
        })
        .collect()
}

/// The endpoint an argument names, read from `maps` only for a
/// NAMESPACE/POD; a name no endpoint has is an error naming `what` and it.
pub fn resolve_one(e: &EndpointRef, maps: &dpdbg::maps::Maps, what: &str) -> anyhow::Result<u32> {
    match e {
        EndpointRef::Id(id) => Ok(*id),
        EndpointRef::Pod(_) => resolve_all(std::slice::from_ref(e), &maps.names()?, what).map(|ids| ids[0]),
    }
}

/// An endpoint's name as tables print it (`lab/ep1`), or "" without one.
pub fn pod_text(names: &Names, id: u32) -> String {
    names.pods.get(&id).map(|p| p.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_by_id_or_name() {
        assert_eq!(parse_endpoint("101"), Ok(EndpointRef::Id(101)));
        let pod = PodName { namespace: "lab".into(), pod: "ep1".into() };
        assert_eq!(parse_endpoint("lab/ep1"), Ok(EndpointRef::Pod(pod.clone())));
        assert!(parse_endpoint("ep1").unwrap_err().contains("NAMESPACE/POD"));
        assert!(parse_endpoint("Lab/ep1").unwrap_err().contains("namespace"));
        let mut names = Names::default();
        names.pods.insert(7, pod.clone());
        assert_eq!(EndpointRef::Pod(pod).resolve(&names), Some(7));
        let other = parse_endpoint("lab/ep9").unwrap();
        assert_eq!(other.resolve(&names), None);
        let e = resolve_all(&[EndpointRef::Id(3), other], &names, "--from").unwrap_err().to_string();
        assert!(e.contains("--from lab/ep9"), "{e}");
        assert_eq!(pod_text(&names, 7), "lab/ep1");
        assert_eq!(pod_text(&names, 8), "");
    }
}
