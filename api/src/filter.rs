//! Hubble's FlowFilter semantics: every field set in one filter must match;
//! within a field any value matches; a flow passes when some whitelist
//! filter matches (or there is none) and no blacklist filter does.

use std::net::IpAddr;

use crate::flow::{self, FlowFilter};

fn ip_matches(pattern: &str, ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else { return false };
    match pattern.split_once('/') {
        None => pattern.parse::<IpAddr>().is_ok_and(|p| p == ip),
        Some((net, len)) => {
            let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u8>()) else { return false };
            match (net, ip) {
                (IpAddr::V4(n), IpAddr::V4(i)) if len <= 32 => {
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len as u32) };
                    u32::from(n) & mask == u32::from(i) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(i)) if len <= 128 => {
                    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len as u32) };
                    u128::from(n) & mask == u128::from(i) & mask
                }
                _ => false,
            }
        }
    }
}

fn ports(f: &flow::Flow) -> (Option<u32>, Option<u32>) {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(flow::layer4::Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(flow::layer4::Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        Some(flow::layer4::Protocol::Sctp(s)) => (Some(s.source_port), Some(s.destination_port)),
        _ => (None, None),
    }
}

fn protocol(f: &flow::Flow) -> Option<&'static str> {
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(flow::layer4::Protocol::Tcp(_)) => Some("tcp"),
        Some(flow::layer4::Protocol::Udp(_)) => Some("udp"),
        Some(flow::layer4::Protocol::IcmPv4(_)) => Some("icmpv4"),
        Some(flow::layer4::Protocol::IcmPv6(_)) => Some("icmpv6"),
        Some(flow::layer4::Protocol::Sctp(_)) => Some("sctp"),
        None => None,
    }
}

/// A TCP flags filter matches when every flag it sets is set in the flow.
fn flags_match(want: &flow::TcpFlags, f: &flow::Flow) -> bool {
    let Some(flow::layer4::Protocol::Tcp(t)) = f.l4.as_ref().and_then(|l| l.protocol.as_ref()) else { return false };
    let Some(have) = &t.flags else { return false };
    let pairs = [
        (want.fin, have.fin),
        (want.syn, have.syn),
        (want.rst, have.rst),
        (want.psh, have.psh),
        (want.ack, have.ack),
        (want.urg, have.urg),
        (want.ece, have.ece),
        (want.cwr, have.cwr),
        (want.ns, have.ns),
    ];
    pairs.iter().all(|(w, h)| !w || *h)
}

fn any<T>(list: &[T], f: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

/// Whether one filter matches one flow.
pub fn matches(filter: &FlowFilter, f: &flow::Flow) -> bool {
    let (src_ip, dst_ip) = f.ip.as_ref().map_or(("", ""), |ip| (ip.source.as_str(), ip.destination.as_str()));
    let (sport, dport) = ports(f);
    let src_id = f.source.as_ref().map_or(0, |e| e.identity);
    let dst_id = f.destination.as_ref().map_or(0, |e| e.identity);
    let ev = f.event_type.as_ref();
    any(&filter.source_ip, |p| ip_matches(p, src_ip))
        && any(&filter.destination_ip, |p| ip_matches(p, dst_ip))
        && any(&filter.traffic_direction, |d| *d == f.traffic_direction)
        && any(&filter.verdict, |v| *v == f.verdict)
        && any(&filter.event_type, |t| {
            ev.is_some_and(|e| e.r#type == t.r#type && (!t.match_sub_type || e.sub_type == t.sub_type))
        })
        && any(&filter.protocol, |p| {
            protocol(f).is_some_and(|q| q.eq_ignore_ascii_case(p) || (p == "icmp" && q.starts_with("icmp")))
        })
        && any(&filter.source_port, |p| sport.is_some_and(|s| p.parse::<u32>() == Ok(s)))
        && any(&filter.destination_port, |p| dport.is_some_and(|d| p.parse::<u32>() == Ok(d)))
        && any(&filter.reply, |r| f.is_reply == Some(*r))
        && any(&filter.source_identity, |i| *i == src_id)
        && any(&filter.destination_identity, |i| *i == dst_id)
        && any(&filter.tcp_flags, |t| flags_match(t, f))
        && any(&filter.ip_version, |v| f.ip.as_ref().is_some_and(|ip| ip.ip_version == *v))
}

/// The whitelist/blacklist rule of GetFlowsRequest.
pub fn admits(whitelist: &[FlowFilter], blacklist: &[FlowFilter], f: &flow::Flow) -> bool {
    (whitelist.is_empty() || whitelist.iter().any(|w| matches(w, f))) && !blacklist.iter().any(|b| matches(b, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(src: &str, dst: &str, sport: u32, dport: u32, syn: bool) -> flow::Flow {
        flow::Flow {
            ip: Some(flow::Ip { source: src.into(), destination: dst.into(), ip_version: 1, encrypted: false }),
            l4: Some(flow::Layer4 {
                protocol: Some(flow::layer4::Protocol::Tcp(flow::Tcp {
                    source_port: sport,
                    destination_port: dport,
                    flags: Some(flow::TcpFlags { syn, ack: !syn, ..Default::default() }),
                })),
            }),
            verdict: flow::Verdict::Forwarded as i32,
            traffic_direction: flow::TrafficDirection::Egress as i32,
            source: Some(flow::Endpoint { identity: 1001, ..Default::default() }),
            destination: Some(flow::Endpoint { identity: 2, ..Default::default() }),
            event_type: Some(flow::CiliumEventType { r#type: 4, sub_type: 5 }),
            ..Default::default()
        }
    }

    #[test]
    fn table_of_filters() {
        let f = tcp("10.0.0.1", "192.0.2.7", 40000, 80, true);
        let cases: Vec<(FlowFilter, bool)> = vec![
            (FlowFilter::default(), true),
            (FlowFilter { source_ip: vec!["10.0.0.0/8".into()], ..Default::default() }, true),
            (FlowFilter { source_ip: vec!["10.0.0.2".into(), "10.0.0.1".into()], ..Default::default() }, true),
            (FlowFilter { destination_ip: vec!["10.0.0.0/8".into()], ..Default::default() }, false),
            (FlowFilter { destination_port: vec!["80".into()], ..Default::default() }, true),
            (FlowFilter { source_port: vec!["80".into()], ..Default::default() }, false),
            (FlowFilter { protocol: vec!["TCP".into()], ..Default::default() }, true),
            (FlowFilter { protocol: vec!["udp".into()], ..Default::default() }, false),
            (FlowFilter { verdict: vec![flow::Verdict::Dropped as i32], ..Default::default() }, false),
            (FlowFilter { source_identity: vec![1001], destination_identity: vec![2], ..Default::default() }, true),
            (
                FlowFilter {
                    tcp_flags: vec![flow::TcpFlags { syn: true, ..Default::default() }],
                    ..Default::default()
                },
                true,
            ),
            (
                FlowFilter {
                    tcp_flags: vec![flow::TcpFlags { fin: true, ..Default::default() }],
                    ..Default::default()
                },
                false,
            ),
            (
                FlowFilter { traffic_direction: vec![flow::TrafficDirection::Ingress as i32], ..Default::default() },
                false,
            ),
            (FlowFilter { ip_version: vec![flow::IpVersion::IPv4 as i32], ..Default::default() }, true),
            (
                FlowFilter {
                    event_type: vec![flow::EventTypeFilter { r#type: 4, match_sub_type: true, sub_type: 0 }],
                    ..Default::default()
                },
                false,
            ),
            (
                FlowFilter {
                    event_type: vec![flow::EventTypeFilter { r#type: 4, ..Default::default() }],
                    ..Default::default()
                },
                true,
            ),
        ];
        for (i, (filter, want)) in cases.iter().enumerate() {
            assert_eq!(matches(filter, &f), *want, "case {i}: {filter:?}");
        }
        let http = FlowFilter { destination_port: vec!["80".into()], ..Default::default() };
        let ten = FlowFilter { source_ip: vec!["10.0.0.0/8".into()], ..Default::default() };
        assert!(admits(std::slice::from_ref(&http), &[], &f));
        assert!(!admits(std::slice::from_ref(&http), std::slice::from_ref(&ten), &f), "blacklist wins");
        assert!(!admits(&[], &[ten], &f));
        assert!(admits(&[], &[], &f));
    }
}
