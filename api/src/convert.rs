//! A datapath event as a Hubble flow: the fields dpdbg can fill, with
//! Hubble's numbers and names. The server writes flows with `wire.rs`;
//! `to_flow` builds the same flow as prost's types and is the reference its
//! test holds those bytes to, so it is built for tests only.

use dpdbg::abi;
#[cfg(test)]
pub use reference::to_flow;

/// Cilium's policy match types (pkg/monitor/api): L3-only 1, L3-L4 2,
/// L4-only 3, all 4; dpdbg numbers its levels by lookup order instead.
pub fn policy_match_type(level: u8) -> u32 {
    match level {
        abi::MATCH_L3_ONLY => 1,
        abi::MATCH_L3_L4 => 2,
        abi::MATCH_L4_ONLY => 3,
        abi::MATCH_ALL => 4,
        _ => 0,
    }
}

#[cfg(test)]
mod reference {
    use std::net::IpAddr;

    use dpdbg::abi;
    use dpdbg::events::EventRef;
    use dpdbg::flow::{Flow as Decoded, write_hubble_summary};

    use super::policy_match_type;
    use crate::flow;

    /// Labels for an identity: the reserved ones as Hubble shows them, the
    /// others as `bpf identity` has them.
    fn labels(identity: u32, names: &dpdbg::maps::Names) -> Vec<String> {
        match identity {
            abi::IDENTITY_HOST => vec!["reserved:host".into()],
            abi::IDENTITY_WORLD => vec!["reserved:world".into()],
            _ => names.labels.get(&identity).cloned().unwrap_or_default(),
        }
    }

    fn mac(b: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(17);
        for (i, x) in b.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            s.push(HEX[(x >> 4) as usize] as char);
            s.push(HEX[(x & 15) as usize] as char);
        }
        s
    }

    /// Converts one event. `wall_offset_ns` turns the event's CLOCK_MONOTONIC
    /// stamp into wall-clock time; `node` is the node's name, `ifname` the name
    /// of the event's interface.
    #[allow(deprecated)] // Hubble still fills drop_reason and Summary for older clients; so do we.
    pub fn to_flow(
        ev: EventRef<'_>,
        d: &Decoded,
        wall_offset_ns: i128,
        node: &str,
        ifname: &str,
        names: &dpdbg::maps::Names,
    ) -> flow::Flow {
        let h = &ev.hdr;
        let p = &d.packet;
        let ns = (h.timestamp_ns as i128 + wall_offset_ns).max(0);
        let time = prost_types::Timestamp { seconds: (ns / 1_000_000_000) as i64, nanos: (ns % 1_000_000_000) as i32 };
        let verdict = match h.verdict {
            abi::VERDICT_FORWARDED => flow::Verdict::Forwarded,
            abi::VERDICT_DROPPED => flow::Verdict::Dropped,
            _ => flow::Verdict::Unknown,
        };
        let ingress = h.direction == abi::DIR_INGRESS;
        let local = flow::Endpoint {
            id: h.endpoint_id,
            identity: if ingress { h.dst_identity } else { h.src_identity },
            ..Default::default()
        };
        // The other side by its address: a local endpoint has its id too.
        let remote_ip = if ingress { p.src_ip } else { p.dst_ip };
        let remote_id = remote_ip.and_then(|ip| names.endpoints.get(&ip).copied()).unwrap_or(0);
        let (mut source, mut destination) = if ingress {
            (flow::Endpoint { id: remote_id, identity: h.src_identity, ..Default::default() }, local)
        } else {
            (local, flow::Endpoint { id: remote_id, identity: h.dst_identity, ..Default::default() })
        };
        source.labels = labels(source.identity, names);
        destination.labels = labels(destination.identity, names);
        // The local side by its endpoint, the other by its address.
        let (local_pod, remote_pod) = (names.pods.get(&h.endpoint_id), names.pods.get(&remote_id));
        let (src_pod, dst_pod) = if ingress { (remote_pod, local_pod) } else { (local_pod, remote_pod) };
        for (e, pod) in [(&mut source, src_pod), (&mut destination, dst_pod)] {
            if let Some(pod) = pod {
                e.namespace = pod.namespace.clone();
                e.pod_name = pod.pod.clone();
            }
        }
        let ip = match (p.src_ip, p.dst_ip) {
            (Some(s), Some(t)) => Some(flow::Ip {
                source: dpdbg::flow::ip_text(s),
                destination: dpdbg::flow::ip_text(t),
                ip_version: if matches!(s, IpAddr::V4(_)) { flow::IpVersion::IPv4 } else { flow::IpVersion::IPv6 }
                    as i32,
                encrypted: false,
            }),
            _ => None,
        };
        let l4 = match p.ip_proto {
            Some(6) => Some(flow::layer4::Protocol::Tcp(flow::Tcp {
                source_port: p.src_port.unwrap_or(0) as u32,
                destination_port: p.dst_port.unwrap_or(0) as u32,
                flags: p.tcp_flags.map(|f| flow::TcpFlags {
                    fin: f & 0x01 != 0,
                    syn: f & 0x02 != 0,
                    rst: f & 0x04 != 0,
                    psh: f & 0x08 != 0,
                    ack: f & 0x10 != 0,
                    urg: f & 0x20 != 0,
                    ece: f & 0x40 != 0,
                    cwr: f & 0x80 != 0,
                    ns: false,
                }),
            })),
            Some(17) => Some(flow::layer4::Protocol::Udp(flow::Udp {
                source_port: p.src_port.unwrap_or(0) as u32,
                destination_port: p.dst_port.unwrap_or(0) as u32,
            })),
            Some(1) => Some(flow::layer4::Protocol::IcmPv4(flow::IcmPv4 {
                r#type: p.icmp_type.unwrap_or(0) as u32,
                code: p.icmp_code.unwrap_or(0) as u32,
            })),
            Some(58) => Some(flow::layer4::Protocol::IcmPv6(flow::IcmPv6 {
                r#type: p.icmp_type.unwrap_or(0) as u32,
                code: p.icmp_code.unwrap_or(0) as u32,
            })),
            _ => None,
        };
        let mut summary = String::new();
        write_hubble_summary(&mut summary, p);
        if h.r#type == dpdbg::kdrop::EVENT_KERNEL_DROP {
            summary.push_str("; kernel drop (");
            summary.push_str(dpdbg::kdrop::reason_name(h.subtype));
            summary.push(')');
        }
        let is_drop = h.r#type == abi::EVENT_DROP;
        flow::Flow {
            time: Some(time),
            verdict: verdict as i32,
            drop_reason: if is_drop { h.subtype as u32 } else { 0 },
            drop_reason_desc: if is_drop { h.subtype as i32 } else { 0 },
            ethernet: (ev.data.len() >= 12)
                .then(|| flow::Ethernet { source: mac(&ev.data[6..12]), destination: mac(&ev.data[0..6]) }),
            ip,
            l4: l4.map(|protocol| flow::Layer4 { protocol: Some(protocol) }),
            source: Some(source),
            destination: Some(destination),
            r#type: flow::FlowType::L3L4 as i32,
            node_name: node.to_string(),
            // A kernel drop is a drop to Hubble, its reason in the summary.
            event_type: Some(if h.r#type == dpdbg::kdrop::EVENT_KERNEL_DROP {
                flow::CiliumEventType { r#type: abi::EVENT_DROP as i32, sub_type: 0 }
            } else {
                flow::CiliumEventType { r#type: h.r#type as i32, sub_type: h.subtype as i32 }
            }),
            traffic_direction: if ingress { flow::TrafficDirection::Ingress } else { flow::TrafficDirection::Egress }
                as i32,
            policy_match_type: if h.r#type == abi::EVENT_POLICY_VERDICT { policy_match_type(h.subtype) } else { 0 },
            trace_observation_point: if h.r#type == abi::EVENT_TRACE {
                if h.subtype == abi::TRACE_TO_ENDPOINT {
                    flow::TraceObservationPoint::ToEndpoint
                } else {
                    flow::TraceObservationPoint::FromEndpoint
                }
            } else {
                flow::TraceObservationPoint::UnknownPoint
            } as i32,
            is_reply: dpdbg::flow::is_reply(h.ct_state),
            interface: Some(flow::NetworkInterface { index: h.ifindex, name: ifname.to_string() }),
            summary,
            uuid: String::new(),
        }
    }
}
