//! Hubble's FlowFilters as the core's [`Filters`]: the server matches
//! GetFlows subscribers with the same filter `dpdbg monitor` uses, parsed
//! once per request instead of once per flow.

use dpdbg::abi;
use dpdbg::flow::{Cidr, Filters, FlowFilter as Core, TypeMatch, parse_protocol};

use crate::flow::{self, FlowFilter};

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

fn cidrs(list: &[String]) -> Result<Vec<Cidr>, String> {
    list.iter().map(|s| s.parse::<Cidr>().map_err(|e| e.to_string())).collect()
}

fn ports(list: &[String]) -> Result<Vec<u16>, String> {
    list.iter().map(|s| s.trim().parse::<u16>().map_err(|_| format!("{s:?} is not a port number (0-65535)"))).collect()
}

fn tcp_flags(f: &flow::TcpFlags) -> Result<u8, String> {
    if f.ns {
        return Err("the NS flag: dpdbg's datapath captures the eight flags from FIN to CWR".into());
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
    let set: [(&str, bool); 23] = [
        ("uuid", !f.uuid.is_empty()),
        ("source_ip_xlated", !f.source_ip_xlated.is_empty()),
        ("source_pod", !f.source_pod.is_empty()),
        ("source_fqdn", !f.source_fqdn.is_empty()),
        ("source_label", !f.source_label.is_empty()),
        ("source_service", !f.source_service.is_empty()),
        ("source_workload", !f.source_workload.is_empty()),
        ("source_cluster_name", !f.source_cluster_name.is_empty()),
        ("destination_pod", !f.destination_pod.is_empty()),
        ("destination_fqdn", !f.destination_fqdn.is_empty()),
        ("destination_label", !f.destination_label.is_empty()),
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
pub fn to_core(f: &FlowFilter) -> Result<Core, String> {
    if let Some(field) = not_implemented(f) {
        return Err(format!(
            "FlowFilter.{field}: dpdbg does not implement this filter, so it refuses the request rather than answer as if it were applied; leave {field} out"
        ));
    }
    let mut protocol = Vec::new();
    for p in &f.protocol {
        protocol.extend(parse_protocol(p).map_err(|e| e.to_string())?);
    }
    Ok(Core {
        event_type: f
            .event_type
            .iter()
            .map(|t| TypeMatch {
                r#type: u8::try_from(t.r#type).unwrap_or(NEVER),
                subtype: t.match_sub_type.then(|| u8::try_from(t.sub_type).unwrap_or(NEVER)),
            })
            .collect(),
        verdict: f.verdict.iter().map(|v| verdict(*v)).collect(),
        drop_reason: f.drop_reason_desc.iter().map(|r| u8::try_from(*r).unwrap_or(NEVER)).collect(),
        source_ip: cidrs(&f.source_ip)?,
        destination_ip: cidrs(&f.destination_ip)?,
        source_port: ports(&f.source_port)?,
        destination_port: ports(&f.destination_port)?,
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

/// GetFlowsRequest's whitelist and blacklist, on the node called `node`.
pub fn filters(node: &str, whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Result<Filters, String> {
    let conv = |l: &[FlowFilter]| {
        l.iter()
            .map(|f| {
                let mut c = to_core(f)?;
                // Every flow here is this node's: a filter on other nodes'
                // names matches none of them.
                if !f.node_name.is_empty() && !f.node_name.iter().any(|p| node_matches(p, node)) {
                    c.ifindex = vec![0];
                }
                Ok(c)
            })
            .collect::<Result<Vec<_>, String>>()
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
        let bad = |f: FlowFilter| to_core(&f).unwrap_err();
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
        (2, "source_pod", false),
        (4, "destination_pod", false),
        (7, "source_fqdn", false),
        (8, "destination_fqdn", false),
        (9, "http_status_code", false),
        (10, "source_label", false),
        (11, "destination_label", false),
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
                let e = filters("n", &white, &black).err().unwrap_or_else(|| panic!("field {n} ({name}) was ignored"));
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
        let none = filters("node-a", &[f("node-b")], &[]).unwrap();
        assert_eq!(none.allow[0].ifindex, vec![0], "another node's name matches no flow here");
        let all = filters("node-a", &[f("node-*")], &[]).unwrap();
        assert!(all.allow[0].ifindex.is_empty(), "this node's name leaves the filter as it is");
    }
}
