//! Hubble's FlowFilters as the core's [`Filters`]: the server matches
//! GetFlows subscribers with the same filter `dpdbg monitor` uses, parsed
//! once per request instead of once per flow.

use dpdbg::abi;
use dpdbg::flow::{Cidr, Filters, FlowFilter as Core, TypeMatch, parse_protocol};
use dpdbg::maps::Names;

use crate::flow::{self, FlowFilter};

/// Why a request's filters were refused: each names the FlowFilter field,
/// so the server's INVALID_ARGUMENT says where the client went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A field of Hubble's FlowFilter dpdbg does not apply.
    #[error(
        "FlowFilter.{field}: dpdbg does not implement this filter, so it refuses the request rather than answer as if it were applied; leave {field} out"
    )]
    NotImplemented { field: &'static str },
    /// A value the field cannot take.
    #[error("FlowFilter.{field}: {why}")]
    BadValue { field: &'static str, why: String },
}

fn bad(field: &'static str) -> impl Fn(String) -> FilterError {
    move |why| FilterError::BadValue { field, why }
}

/// No event carries this value in the field: a filter value Hubble knows
/// and dpdbg never produces matches nothing rather than everything.
const NEVER: u8 = u8::MAX;

fn verdict(v: i32) -> u8 {
    match flow::Verdict::try_from(v) {
        Ok(flow::Verdict::Forwarded) => abi::VERDICT_FORWARDED,
        Ok(flow::Verdict::Dropped) => abi::VERDICT_DROPPED,
        _ => NEVER,
    }
}

fn direction(d: i32) -> u8 {
    match flow::TrafficDirection::try_from(d) {
        Ok(flow::TrafficDirection::Ingress) => abi::DIR_INGRESS,
        Ok(flow::TrafficDirection::Egress) => abi::DIR_EGRESS,
        _ => NEVER,
    }
}

fn cidrs(field: &'static str, list: &[String]) -> Result<Vec<Cidr>, FilterError> {
    list.iter().map(|s| s.parse::<Cidr>().map_err(|e| bad(field)(e.to_string()))).collect()
}

fn ports(field: &'static str, list: &[String]) -> Result<Vec<u16>, FilterError> {
    list.iter()
        .map(|s| s.trim().parse::<u16>().map_err(|_| bad(field)(format!("{s:?} is not a port number (0-65535)"))))
        .collect()
}

fn tcp_flags(f: &flow::TcpFlags) -> Result<u8, FilterError> {
    if f.ns {
        return Err(bad("tcp_flags")("the NS flag: dpdbg's datapath captures the eight flags from FIN to CWR".into()));
    }
    Ok([f.fin, f.syn, f.rst, f.psh, f.ack, f.urg, f.ece, f.cwr]
        .iter()
        .enumerate()
        .fold(0u8, |m, (i, on)| if *on { m | 1 << i } else { m }))
}

/// The fields of Hubble's FlowFilter that dpdbg does not apply: a request
/// setting one is refused naming it, never answered as if it were applied.
/// (Hubble's own server applies every field it defines.)
fn not_implemented(f: &FlowFilter) -> Option<&'static str> {
    let set: [(&str, bool); 19] = [
        ("uuid", !f.uuid.is_empty()),
        ("source_ip_xlated", !f.source_ip_xlated.is_empty()),
        ("source_fqdn", !f.source_fqdn.is_empty()),
        ("source_service", !f.source_service.is_empty()),
        ("source_workload", !f.source_workload.is_empty()),
        ("source_cluster_name", !f.source_cluster_name.is_empty()),
        ("destination_fqdn", !f.destination_fqdn.is_empty()),
        ("destination_service", !f.destination_service.is_empty()),
        ("destination_workload", !f.destination_workload.is_empty()),
        ("destination_cluster_name", !f.destination_cluster_name.is_empty()),
        ("http_status_code", !f.http_status_code.is_empty()),
        ("http_method", !f.http_method.is_empty()),
        ("http_path", !f.http_path.is_empty()),
        ("http_url", !f.http_url.is_empty()),
        ("http_header", !f.http_header.is_empty()),
        ("dns_query", !f.dns_query.is_empty()),
        ("node_labels", !f.node_labels.is_empty()),
        ("trace_id", !f.trace_id.is_empty()),
        ("experimental", f.experimental.is_some()),
    ];
    set.iter().find(|(_, on)| *on).map(|(name, _)| *name)
}

/// Whether Hubble's node_name `pattern` names this node: `*` matches any
/// run of characters, and a `CLUSTER/` prefix names the cluster, which is
/// `default` here (dpdbg has no cluster name of its own).
fn node_matches(pattern: &str, node: &str) -> bool {
    let pattern = match pattern.split_once('/') {
        Some((cluster, rest)) if glob(cluster, CLUSTER) => rest,
        Some(_) => return false,
        None => pattern,
    };
    pattern.is_empty() || glob(pattern, node)
}

/// The cluster every dpdbg node is in, for node_name filters that name one.
const CLUSTER: &str = "default";

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else { return false };
            (0..=rest.len()).filter(|i| rest.is_char_boundary(*i)).any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// One Hubble filter in the core's terms; an error names the value it could not take.
pub fn to_core(f: &FlowFilter) -> Result<Core, FilterError> {
    if let Some(field) = not_implemented(f) {
        return Err(FilterError::NotImplemented { field });
    }
    let mut protocol = Vec::new();
    for p in &f.protocol {
        protocol.extend(parse_protocol(p).map_err(|e| bad("protocol")(e.to_string()))?);
    }
    Ok(Core {
        event_type: f
            .event_type
            .iter()
            .flat_map(|t| {
                let m = TypeMatch {
                    r#type: u8::try_from(t.r#type).unwrap_or(NEVER),
                    subtype: t.match_sub_type.then(|| u8::try_from(t.sub_type).unwrap_or(NEVER)),
                };
                // Hubble's drops are the kernel's too (flows of type drop).
                let kernel = (m.r#type == dpdbg::abi::EVENT_DROP && m.subtype.is_none())
                    .then_some(TypeMatch { r#type: dpdbg::kdrop::EVENT_KERNEL_DROP, subtype: None });
                std::iter::once(m).chain(kernel)
            })
            .collect(),
        verdict: f.verdict.iter().map(|v| verdict(*v)).collect(),
        drop_reason: f.drop_reason_desc.iter().map(|r| u8::try_from(*r).unwrap_or(NEVER)).collect(),
        source_ip: cidrs("source_ip", &f.source_ip)?,
        destination_ip: cidrs("destination_ip", &f.destination_ip)?,
        source_port: ports("source_port", &f.source_port)?,
        destination_port: ports("destination_port", &f.destination_port)?,
        protocol,
        source_identity: f.source_identity.clone(),
        destination_identity: f.destination_identity.clone(),
        tcp_flags: f.tcp_flags.iter().map(tcp_flags).collect::<Result<_, _>>()?,
        traffic_direction: f.traffic_direction.iter().map(|d| direction(*d)).collect(),
        ip_version: f
            .ip_version
            .iter()
            .map(|v| match flow::IpVersion::try_from(*v) {
                Ok(flow::IpVersion::IPv4) => abi::FAMILY_IPV4,
                Ok(flow::IpVersion::IPv6) => abi::FAMILY_IPV6,
                _ => NEVER,
            })
            .collect(),
        reply: f.reply.clone(),
        // An interface is matched by index; a name is looked up on this node,
        // and a name no interface has matches nothing (index 0 is never used).
        ifindex: f
            .interface
            .iter()
            .map(|i| if i.index != 0 { i.index } else { dpdbg::sys::ifindex(&i.name).unwrap_or(0) })
            .collect(),
        ..Core::default()
    })
}

/// One requirement of a Kubernetes label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parses a label selector as Kubernetes writes them (`app=web`,
/// `app!=web`, `tier in (a,b)`, `tier notin (a)`, `app`, `!app`, joined by
/// ','); a key may carry a source (`k8s:app=web`), else it matches any.
fn selector(s: &str) -> Result<Vec<Requirement>, String> {
    let bad = |why: &str| format!("label selector {s:?}: {why}");
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    let key_ok = |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b));
    let list = |v: &str| -> Result<Vec<String>, String> {
        let inner =
            v.trim().strip_prefix('(').and_then(|v| v.strip_suffix(')')).ok_or_else(|| bad("a set is (a,b)"))?;
        Ok(inner.split(',').map(|x| x.trim().to_string()).collect())
    };
    parts
        .into_iter()
        .map(|p| {
            let p = p.trim();
            let r = if let Some((k, v)) = p.split_once("!=") {
                Requirement::NotIn(k.trim().into(), vec![v.trim().into()])
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Requirement::In(k.trim().into(), vec![v.trim().into()])
            } else if let Some((k, v)) = p.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), list(v)?)
            } else if let Some((k, v)) = p.split_once(" in ") {
                Requirement::In(k.trim().into(), list(v)?)
            } else if let Some(k) = p.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else {
                Requirement::Exists(p.into())
            };
            let key = match &r {
                Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::NotExists(k) => k,
            };
            if key_ok(key) { Ok(r) } else { Err(bad(&format!("{key:?} is not a label key"))) }
        })
        .collect()
}

/// Whether labels (`source:key=value`) satisfy every requirement.
fn selects(reqs: &[Requirement], labels: &[String]) -> bool {
    let kv: Vec<(&str, &str)> = labels.iter().map(|l| l.split_once('=').unwrap_or((l.as_str(), ""))).collect();
    // A key without a source matches the key under any source.
    let key_is = |label_key: &str, want: &str| {
        label_key == want
            || (!want.contains(':') && label_key.split_once(':').is_some_and(|(_, k)| k == want))
            || want.strip_prefix("any:").is_some_and(|w| label_key.split_once(':').map_or(label_key, |(_, k)| k) == w)
    };
    let value_of = |want: &str| kv.iter().find(|(k, _)| key_is(k, want)).map(|(_, v)| *v);
    reqs.iter().all(|r| match r {
        Requirement::In(k, vs) => value_of(k).is_some_and(|v| vs.iter().any(|x| x == v)),
        Requirement::NotIn(k, vs) => value_of(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
        Requirement::Exists(k) => value_of(k).is_some(),
        Requirement::NotExists(k) => value_of(k).is_none(),
    })
}

/// Whether a pod matches Hubble's pod filter: `name-prefix`,
/// `namespace/name-prefix`, or `namespace/` for every pod of a namespace.
fn pod_matches(filter: &str, pod: &dpdbg::maps::PodName) -> bool {
    match filter.split_once('/') {
        Some((ns, prefix)) => ns == pod.namespace && pod.pod.starts_with(prefix),
        None => pod.pod.starts_with(filter),
    }
}

/// Whether one side of a flow, by the names it carries (namespace, pod,
/// labels), passes a filter's pod list and label selectors (each list:
/// any of it; both lists: both). For flows read back from Hubble's JSON
/// (`observe --input-file`), where the names are in the flow, not the maps.
pub fn endpoint_selected(
    pods: &[String],
    selectors: &[String],
    namespace: &str,
    pod: &str,
    labels: &[String],
) -> Result<bool, String> {
    let named = dpdbg::maps::PodName { namespace: namespace.to_string(), pod: pod.to_string() };
    let pod_ok = pods.is_empty() || (!pod.is_empty() && pods.iter().any(|f| pod_matches(f, &named)));
    let mut label_ok = selectors.is_empty();
    for s in selectors {
        label_ok |= selects(&selector(s)?, labels);
    }
    Ok(pod_ok && label_ok)
}

/// A field that can match no flow: interface index 0 is never used.
fn match_nothing(c: &mut Core) {
    c.ifindex = vec![0];
}

/// The pod and label filters of `f` in the core's terms, with the names
/// known now: a pod is its endpoint's addresses, a selector the identities
/// whose labels it selects. Names are resolved once, when the request comes.
fn with_names(f: &FlowFilter, c: &mut Core, names: &Names) -> Result<(), FilterError> {
    let sides = [
        (&f.source_pod, &f.source_label, true, "source_label"),
        (&f.destination_pod, &f.destination_label, false, "destination_label"),
    ];
    for (pods, labels, source, label_field) in sides {
        if !pods.is_empty() {
            let field = if source { &mut c.source_ip } else { &mut c.destination_ip };
            // Both an address filter and a pod: the pod's addresses within it.
            let kept: Vec<Cidr> = names
                .endpoints
                .iter()
                .filter(|(_, id)| names.pods.get(id).is_some_and(|p| pods.iter().any(|f| pod_matches(f, p))))
                .map(|(ip, _)| *ip)
                .filter(|ip| field.is_empty() || field.iter().any(|c| c.contains(*ip)))
                .map(Cidr::from)
                .collect();
            if kept.is_empty() {
                match_nothing(c);
            } else {
                *field = kept;
            }
        }
        if !labels.is_empty() {
            let reqs = labels.iter().map(|l| selector(l)).collect::<Result<Vec<_>, _>>().map_err(bad(label_field))?;
            let mut ids: Vec<u32> = names
                .labels
                .keys()
                .copied()
                .chain([abi::IDENTITY_HOST, abi::IDENTITY_WORLD])
                .filter(|id| reqs.iter().any(|r| selects(r, &names.labels_of(*id))))
                .collect();
            ids.sort_unstable();
            let field = if source { &mut c.source_identity } else { &mut c.destination_identity };
            let kept: Vec<u32> =
                if field.is_empty() { ids } else { ids.into_iter().filter(|i| field.contains(i)).collect() };
            if kept.is_empty() {
                match_nothing(c);
            } else {
                *field = kept;
            }
        }
    }
    Ok(())
}

/// GetFlowsRequest's whitelist and blacklist, on the node called `node`,
/// with the names known now.
pub fn filters(
    node: &str,
    names: &Names,
    whitelist: &[FlowFilter],
    blacklist: &[FlowFilter],
) -> Result<Filters, FilterError> {
    let conv = |l: &[FlowFilter]| {
        l.iter()
            .map(|f| {
                let mut c = to_core(f)?;
                with_names(f, &mut c, names)?;
                // Every flow here is this node's: a filter on other nodes'
                // names matches none of them.
                if !f.node_name.is_empty() && !f.node_name.iter().any(|p| node_matches(p, node)) {
                    c.ifindex = vec![0];
                }
                Ok(c)
            })
            .collect::<Result<Vec<_>, FilterError>>()
    };
    Ok(Filters { allow: conv(whitelist)?, deny: conv(blacklist)?, ..Filters::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubble_values_become_the_core_values() {
        let f = FlowFilter {
            source_ip: vec!["10.0.0.0/8".into()],
            destination_port: vec!["80".into()],
            protocol: vec!["ICMP".into(), "tcp".into()],
            verdict: vec![flow::Verdict::Dropped as i32, flow::Verdict::Audit as i32],
            traffic_direction: vec![flow::TrafficDirection::Egress as i32],
            ip_version: vec![flow::IpVersion::IPv6 as i32],
            tcp_flags: vec![flow::TcpFlags { syn: true, ack: true, ..Default::default() }],
            event_type: vec![flow::EventTypeFilter { r#type: 1, match_sub_type: true, sub_type: 133 }],
            drop_reason_desc: vec![flow::DropReason::PolicyDenied as i32],
            interface: vec![flow::NetworkInterface { index: 7, name: String::new() }],
            ..Default::default()
        };
        let c = to_core(&f).unwrap();
        assert_eq!(c.source_ip, vec!["10.0.0.0/8".parse::<Cidr>().unwrap()]);
        assert_eq!(c.destination_port, vec![80]);
        assert_eq!(c.protocol, vec![1, 58, 6]);
        assert_eq!(c.verdict, vec![abi::VERDICT_DROPPED, NEVER]);
        assert_eq!(c.traffic_direction, vec![abi::DIR_EGRESS]);
        assert_eq!(c.ip_version, vec![abi::FAMILY_IPV6]);
        assert_eq!(c.tcp_flags, vec![0x12]);
        assert_eq!(c.event_type, vec![TypeMatch { r#type: 1, subtype: Some(133) }]);
        assert_eq!(c.drop_reason, vec![133]);
        assert_eq!(c.ifindex, vec![7]);
        let lo = FlowFilter {
            interface: vec![flow::NetworkInterface { index: 0, name: "lo".into() }],
            ..Default::default()
        };
        assert_eq!(to_core(&lo).unwrap().ifindex, vec![1]);
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |f: FlowFilter| to_core(&f).unwrap_err().to_string();
        assert!(bad(FlowFilter { source_ip: vec!["10.0.0/8".into()], ..Default::default() }).contains("10.0.0/8"));
        assert!(bad(FlowFilter { source_port: vec!["http".into()], ..Default::default() }).contains("\"http\""));
        assert!(bad(FlowFilter { protocol: vec!["kafka".into()], ..Default::default() }).contains("kafka"));
        let ns =
            FlowFilter { tcp_flags: vec![flow::TcpFlags { ns: true, ..Default::default() }], ..Default::default() };
        assert!(bad(ns).contains("NS"));
    }

    /// Every FlowFilter field Hubble's flow.proto defines that dpdbg does not
    /// implement, by number, as Hubble's clients put it on the wire: (field
    /// number, name, a submessage rather than a string).
    const NOT_IMPLEMENTED: &[(u32, &str, bool)] = &[
        (7, "source_fqdn", false),
        (8, "destination_fqdn", false),
        (9, "http_status_code", false),
        (16, "source_service", false),
        (17, "destination_service", false),
        (18, "dns_query", false),
        (21, "http_method", false),
        (22, "http_path", false),
        (26, "source_workload", true),
        (27, "destination_workload", true),
        (28, "trace_id", false),
        (29, "uuid", false),
        (31, "http_url", false),
        (32, "http_header", true),
        (34, "source_ip_xlated", false),
        (36, "node_labels", false),
        (37, "source_cluster_name", false),
        (38, "destination_cluster_name", false),
        (999, "experimental", true),
    ];

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A FlowFilter with field `n` set, in bytes as any protobuf encoder writes them.
    fn with_field(n: u32, message: bool) -> Vec<u8> {
        let mut value = Vec::new();
        if message {
            // Field 1 of the submessage (Workload.name, HTTPHeader.key,
            // Experimental.cel_expression): a string.
            value.extend([0x0a, 1, b'x']);
        } else {
            value.push(b'x');
        }
        let mut out = Vec::new();
        varint(&mut out, u64::from(n) << 3 | 2);
        varint(&mut out, value.len() as u64);
        out.extend(value);
        out
    }

    #[test]
    fn every_hubble_filter_field_is_applied_or_refused_by_name() {
        use prost::Message;
        for &(n, name, message) in NOT_IMPLEMENTED {
            let f = FlowFilter::decode(&with_field(n, message)[..]).unwrap();
            for (white, black) in [(vec![f.clone()], vec![]), (vec![], vec![f.clone()])] {
                let e = filters("n", &Names::default(), &white, &black)
                    .err()
                    .unwrap_or_else(|| panic!("field {n} ({name}) was ignored"));
                assert_eq!(e, FilterError::NotImplemented { field: name });
                let e = e.to_string();
                assert!(e.contains(name), "field {n}: {e}");
                assert!(e.contains("not implemented") || e.contains("does not"), "field {n}: {e}");
            }
        }
    }

    #[test]
    fn node_name_patterns_as_hubble_writes_them() {
        for (p, yes) in [
            ("node-a", true),
            ("node-*", true),
            ("*-a", true),
            ("*", true),
            ("default/", true),
            ("default/node-a", true),
            ("*/node-*", true),
            ("other/node-a", false),
            ("node-b", false),
            ("k8s*", false),
        ] {
            assert_eq!(node_matches(p, "node-a"), yes, "{p}");
        }
        let f = |p: &str| FlowFilter { node_name: vec![p.into()], ..Default::default() };
        let none = filters("node-a", &Names::default(), &[f("node-b")], &[]).unwrap();
        assert_eq!(none.allow[0].ifindex, vec![0], "another node's name matches no flow here");
        let all = filters("node-a", &Names::default(), &[f("node-*")], &[]).unwrap();
        assert!(all.allow[0].ifindex.is_empty(), "this node's name leaves the filter as it is");
    }

    #[test]
    fn pods_and_labels_select_by_the_names_known() {
        use dpdbg::maps::PodName;
        let mut names = Names::default();
        for (id, ns, pod, ip, identity) in [
            (101, "lab", "ep1", "198.18.0.1", 1001),
            (102, "lab", "ep2", "198.18.0.2", 1002),
            (103, "other", "ep1", "198.18.0.3", 1003),
        ] {
            names.pods.insert(id, PodName { namespace: ns.into(), pod: pod.into() });
            names.endpoints.insert(ip.parse().unwrap(), id);
            names.labels.insert(identity, vec![format!("k8s:app={pod}"), format!("k8s:ns={ns}")]);
        }
        let f = |pods: &[&str], labels: &[&str]| FlowFilter {
            source_pod: pods.iter().map(|s| s.to_string()).collect(),
            source_label: labels.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let ips = |w: FlowFilter| {
            let c = filters("n", &names, &[w], &[]).unwrap().allow.remove(0);
            let mut v: Vec<String> = c.source_ip.iter().map(|c| c.to_string()).collect();
            v.sort();
            (v, c.ifindex)
        };
        assert_eq!(ips(f(&["lab/ep1"], &[])).0, ["198.18.0.1/32"]);
        assert_eq!(ips(f(&["lab/"], &[])).0, ["198.18.0.1/32", "198.18.0.2/32"]);
        assert_eq!(ips(f(&["ep1"], &[])).0, ["198.18.0.1/32", "198.18.0.3/32"], "no namespace: any");
        assert_eq!(ips(f(&["lab/nonesuch"], &[])).1, vec![0], "no such pod: no flow");
        let ids = |sel: &str| {
            let mut c = filters("n", &names, &[f(&[], &[sel])], &[]).unwrap().allow.remove(0);
            c.source_identity.sort();
            (c.source_identity, c.ifindex)
        };
        assert_eq!(ids("app=ep2").0, [1002]);
        assert_eq!(ids("k8s:app=ep2").0, [1002]);
        assert_eq!(ids("app in (ep1,ep2),ns=lab").0, [1001, 1002]);
        assert_eq!(ids("app!=ep1,ns").0, [1002]);
        assert_eq!(ids("!app").0, [1, 2], "only the reserved identities lack app");
        assert_eq!(ids("reserved:world").0, [2]);
        assert_eq!(ids("app=nonesuch").1, vec![0]);
        let e = filters("n", &names, &[f(&[], &["app in ep1"])], &[]).unwrap_err();
        assert!(matches!(&e, FilterError::BadValue { field: "source_label", .. }), "{e:?}");
        assert!(e.to_string().contains("label selector"), "{e}");
    }
}
