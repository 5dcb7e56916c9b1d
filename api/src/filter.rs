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

/// One Hubble filter in the core's terms; an error names the value it could not take.
pub fn to_core(f: &FlowFilter) -> Result<Core, String> {
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

/// GetFlowsRequest's whitelist and blacklist.
pub fn filters(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Result<Filters, String> {
    let conv = |l: &[FlowFilter]| l.iter().map(to_core).collect::<Result<Vec<_>, _>>();
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
}
