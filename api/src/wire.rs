//! A flow's GetFlowsResponse written as protobuf bytes straight from the
//! event, without building the prost message first. The server sends every
//! flow a follower takes; building `flow::Flow` (a dozen Strings and nested
//! structs) and encoding it were most of the server's cost per flow.
//! `convert::to_flow` stays the reference: a test holds the two to the same
//! bytes, field by field, for every kind of event.

use std::net::IpAddr;

use dpdbg::abi;
use dpdbg::events::EventRef;
use dpdbg::flow::{Flow as Decoded, push_ip_bytes, write_hubble_summary};
use dpdbg::maps::{Names, PodName};

use crate::convert::policy_match_type;
use crate::flow;

const VARINT: u32 = 0;
const LEN: u32 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

/// uint32, and enums and int32 that are never negative here; proto3 leaves zero out.
fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, v);
    }
}

fn boolean(out: &mut Vec<u8>, field: u32, v: bool) {
    if v {
        key(out, field, VARINT);
        out.push(1);
    }
}

fn bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        key(out, field, LEN);
        varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
}

/// A nested message: its length goes before it, so a byte is kept for the
/// length and the content moved along in the rare case it needs more.
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    nested(out, field, 1, body);
}

/// As `message`, for one that is nearly always 128 bytes to 16 KiB long (a
/// whole flow): two bytes are kept for its length, and it is the short or
/// the huge one that moves, not every one.
fn long_message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    nested(out, field, 2, body);
}

/// A nested message with `kept` bytes kept for its length: written in
/// place when the length's varint takes that many, else the content moves.
fn nested(out: &mut Vec<u8>, field: u32, kept: usize, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.resize(at + kept, 0);
    body(out);
    let len = out.len() - at - kept;
    let need = ((usize::BITS - len.leading_zeros()) as usize).div_ceil(7).max(1);
    if need == kept {
        let mut v = len;
        for (i, b) in out[at..at + kept].iter_mut().enumerate() {
            *b = (v & 0x7f) as u8 | if i + 1 < kept { 0x80 } else { 0 };
            v >>= 7;
        }
    } else {
        let mut head = Vec::with_capacity(10);
        varint(&mut head, len as u64);
        out.splice(at..at + kept, head);
    }
}

fn timestamp(out: &mut Vec<u8>, field: u32, ns: i128) {
    let ns = ns.max(0);
    message(out, field, |o| {
        uint(o, 1, (ns / 1_000_000_000) as u64);
        uint(o, 2, (ns % 1_000_000_000) as u64);
    });
}

fn mac(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = [b':'; 17];
    for (i, x) in b.iter().enumerate() {
        s[i * 3] = HEX[(x >> 4) as usize];
        s[i * 3 + 1] = HEX[(x & 15) as usize];
    }
    bytes(out, field, &s);
}

/// One side of a flow: its endpoint id (the local side's), identity, and
/// the names a refresh read (`Names`): namespace, labels, pod.
fn endpoint(out: &mut Vec<u8>, field: u32, id: u32, identity: u32, pod: Option<&PodName>, names: &Names) {
    message(out, field, |o| {
        uint(o, 1, u64::from(id));
        uint(o, 2, u64::from(identity));
        if let Some(p) = pod {
            bytes(o, 3, p.namespace.as_bytes());
        }
        match dpdbg::maps::names::reserved_labels(identity) {
            Some(l) => bytes(o, 4, l.as_bytes()),
            None => {
                for l in names.labels.get(&identity).into_iter().flatten() {
                    bytes(o, 4, l.as_bytes());
                }
            }
        }
        if let Some(p) = pod {
            bytes(o, 5, p.pod.as_bytes());
        }
    });
}

/// The GetFlowsResponse of one flow, appended to `out`: what encoding
/// `convert::to_flow`'s flow in its response gives, byte for byte.
/// `scratch` is the caller's, for the summary. The event and what names
/// it (time base, node, interface, names table) come apart: one encoder
/// call per flow, nothing bundled on the way.
#[allow(clippy::too_many_arguments)]
pub fn flow_response(
    out: &mut Vec<u8>,
    scratch: &mut String,
    ev: EventRef<'_>,
    d: &Decoded,
    wall_offset_ns: i128,
    node: &str,
    ifname: &str,
    names: &Names,
) {
    let h = &ev.hdr;
    let p = &d.packet;
    let ns = h.timestamp_ns as i128 + wall_offset_ns;
    let ingress = h.direction == abi::DIR_INGRESS;
    let is_drop = h.r#type == abi::EVENT_DROP;
    long_message(out, 1, |o| {
        timestamp(o, 1, ns);
        let verdict = match h.verdict {
            abi::VERDICT_FORWARDED => flow::Verdict::Forwarded,
            abi::VERDICT_DROPPED => flow::Verdict::Dropped,
            _ => flow::Verdict::Unknown,
        };
        uint(o, 2, verdict as u64);
        uint(o, 3, if is_drop { u64::from(h.subtype) } else { 0 });
        if ev.data.len() >= 12 {
            message(o, 4, |o| {
                mac(o, 1, &ev.data[6..12]);
                mac(o, 2, &ev.data[0..6]);
            });
        }
        if let (Some(s), Some(t)) = (p.src_ip, p.dst_ip) {
            message(o, 5, |o| {
                for (field, ip) in [(1, s), (2, t)] {
                    key(o, field, LEN);
                    let at = o.len();
                    o.push(0);
                    push_ip_bytes(o, ip);
                    // An address is at most 39 bytes: its length fits the byte kept.
                    o[at] = (o.len() - at - 1) as u8;
                }
                let v = if matches!(s, IpAddr::V4(_)) { flow::IpVersion::IPv4 } else { flow::IpVersion::IPv6 };
                uint(o, 3, v as u64);
            });
        }
        let ports = |o: &mut Vec<u8>| {
            uint(o, 1, u64::from(p.src_port.unwrap_or(0)));
            uint(o, 2, u64::from(p.dst_port.unwrap_or(0)));
        };
        let icmp = |o: &mut Vec<u8>| {
            uint(o, 1, u64::from(p.icmp_type.unwrap_or(0)));
            uint(o, 2, u64::from(p.icmp_code.unwrap_or(0)));
        };
        match p.ip_proto {
            Some(6) => message(o, 6, |o| {
                message(o, 1, |o| {
                    ports(o);
                    if let Some(f) = p.tcp_flags {
                        message(o, 3, |o| {
                            // FIN SYN RST PSH ACK URG ECE CWR are fields 1 to 8, bits 0 to 7.
                            for bit in 0..8 {
                                boolean(o, bit + 1, f & (1 << bit) != 0);
                            }
                        });
                    }
                })
            }),
            Some(17) => message(o, 6, |o| message(o, 2, ports)),
            Some(1) => message(o, 6, |o| message(o, 3, icmp)),
            Some(58) => message(o, 6, |o| message(o, 4, icmp)),
            _ => {}
        }
        let (local, remote) = if ingress { (h.dst_identity, h.src_identity) } else { (h.src_identity, h.dst_identity) };
        // The local side is the event's endpoint; the remote side is found
        // by its address when it is an endpoint of this node too, and then
        // has its id as Hubble gives every local endpoint (from the names
        // table of the last refresh: no map lookup per flow).
        let local_pod = names.pods.get(&h.endpoint_id);
        let remote_ip = if ingress { p.src_ip } else { p.dst_ip };
        let remote_id = remote_ip.and_then(|ip| names.endpoints.get(&ip).copied());
        let remote_pod = remote_id.and_then(|id| names.pods.get(&id));
        let remote_id = remote_id.unwrap_or(0);
        if ingress {
            endpoint(o, 8, remote_id, remote, remote_pod, names);
            endpoint(o, 9, h.endpoint_id, local, local_pod, names);
        } else {
            endpoint(o, 8, h.endpoint_id, local, local_pod, names);
            endpoint(o, 9, remote_id, remote, remote_pod, names);
        }
        uint(o, 10, flow::FlowType::L3L4 as u64);
        bytes(o, 11, node.as_bytes());
        // A kernel drop is a drop to Hubble (its reason is the kernel's,
        // not one of cilium's, so it is named in the summary only).
        let kernel = h.r#type == dpdbg::kdrop::EVENT_KERNEL_DROP;
        message(o, 19, |o| {
            uint(o, 1, if kernel { u64::from(abi::EVENT_DROP) } else { u64::from(h.r#type) });
            uint(o, 2, if kernel { 0 } else { u64::from(h.subtype) });
        });
        let dir = if ingress { flow::TrafficDirection::Ingress } else { flow::TrafficDirection::Egress };
        uint(o, 22, dir as u64);
        if h.r#type == abi::EVENT_POLICY_VERDICT {
            uint(o, 23, u64::from(policy_match_type(h.subtype)));
        }
        if h.r#type == abi::EVENT_TRACE {
            let point = if h.subtype == abi::TRACE_TO_ENDPOINT {
                flow::TraceObservationPoint::ToEndpoint
            } else {
                flow::TraceObservationPoint::FromEndpoint
            };
            uint(o, 24, point as u64);
        }
        uint(o, 25, if is_drop { u64::from(h.subtype) } else { 0 });
        if let Some(r) = dpdbg::flow::is_reply(h.ct_state) {
            message(o, 26, |o| boolean(o, 1, r));
        }
        message(o, 28, |o| {
            uint(o, 1, u64::from(h.ifindex));
            bytes(o, 2, ifname.as_bytes());
        });
        // Summary as cilium fills it for L3/L4 flows (`TCP Flags: ACK, FIN`);
        // the monitor's line stays in `dpdbg monitor`. A kernel drop adds
        // the kernel's reason, as Hubble adds `; Auth: …`: `UDP; kernel drop (NO_SOCKET)`.
        scratch.clear();
        write_hubble_summary(scratch, p);
        if kernel {
            scratch.push_str("; kernel drop (");
            scratch.push_str(dpdbg::kdrop::reason_name(h.subtype));
            scratch.push(')');
        }
        bytes(o, 100_000, scratch.as_bytes());
    });
    bytes(out, 1000, node.as_bytes());
    timestamp(out, 1001, ns);
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::observer::GetFlowsResponse;
    use crate::observer::get_flows_response::ResponseTypes;

    /// A record of `kind` (type, subtype, verdict, ct state, direction).
    fn record(kind: (u8, u8, u8, u8, u8), ep: u32, ids: (u32, u32), data: &[u8]) -> Vec<u8> {
        let (t, subtype, verdict, ct, dir) = kind;
        let mut r = vec![0u8; 40];
        r[0..8].copy_from_slice(&123_456_789_012u64.to_le_bytes());
        r[8] = t;
        r[9] = subtype;
        r[10] = verdict;
        r[11] = ct;
        r[12] = dir;
        r[16..20].copy_from_slice(&7u32.to_le_bytes());
        r[20..24].copy_from_slice(&ep.to_le_bytes());
        r[24..28].copy_from_slice(&ids.0.to_le_bytes());
        r[28..32].copy_from_slice(&ids.1.to_le_bytes());
        r[32..36].copy_from_slice(&(data.len() as u32 + 10).to_le_bytes());
        r[36..40].copy_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    fn frames() -> Vec<Vec<u8>> {
        use etherparse::PacketBuilder;
        let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xab], [0xfe, 0xdc, 0, 0, 0, 2]);
        let v4 = || eth().ipv4([10, 0, 1, 2], [192, 168, 100, 200], 64);
        let v6 = || eth().ipv6([0xfd; 16], [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 64);
        let mut out = Vec::new();
        let mut w = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            out.push(v);
        };
        w(&|v| v4().tcp(40000, 80, 1, 1024).syn().write(v, &[]).unwrap());
        w(&|v| v4().tcp(80, 40000, 1, 1024).ack(9).fin().psh().rst().urg(3).write(v, &[1; 200]).unwrap());
        w(&|v| v4().udp(5353, 53).write(v, &[0; 30]).unwrap());
        w(&|v| v4().icmpv4_echo_request(1, 2).write(v, &[]).unwrap());
        w(&|v| v6().tcp(1234, 443, 1, 1024).syn().ack(1).write(v, &[]).unwrap());
        w(&|v| v6().udp(53, 4000).write(v, &[]).unwrap());
        w(&|v| v6().icmpv6_echo_request(1, 2).write(v, &[]).unwrap());
        w(&|v| {
            v.extend_from_slice(&[0xff; 6]);
            v.extend_from_slice(&[2; 6]);
            v.extend_from_slice(&[0x08, 0x06]);
            v.extend_from_slice(&[0; 28]);
        });
        w(&|v| v.extend_from_slice(&[1, 2, 3]));
        w(&|_| {});
        // IPv4 with protocol 47 (GRE): no L4.
        w(&|v| {
            v4().udp(1, 2).write(v, &[]).unwrap();
            v[14 + 9] = 47;
        });
        out
    }

    #[test]
    fn a_long_message_is_the_same_bytes_whatever_its_length() {
        for len in [0, 5, 127, 128, 200, 16_383, 16_384, 20_000] {
            let (mut a, mut b) = (vec![7u8], vec![7u8]);
            message(&mut a, 1, |o| o.resize(o.len() + len, 3));
            long_message(&mut b, 1, |o| o.resize(o.len() + len, 3));
            assert_eq!(a, b, "{len} bytes");
        }
    }

    #[test]
    fn the_same_bytes_as_prost_for_every_kind_of_event() {
        use abi::*;
        let kinds = [
            (EVENT_TRACE, TRACE_TO_ENDPOINT, VERDICT_FORWARDED, CT_NEW, DIR_INGRESS),
            (EVENT_TRACE, TRACE_FROM_ENDPOINT, VERDICT_FORWARDED, CT_REPLY, DIR_EGRESS),
            (EVENT_TRACE, TRACE_FROM_ENDPOINT, VERDICT_FORWARDED, CT_ESTABLISHED, DIR_EGRESS),
            (EVENT_DROP, 133, VERDICT_DROPPED, 0, DIR_INGRESS),
            (EVENT_DROP, 181, VERDICT_DROPPED, CT_NEW, DIR_EGRESS),
            (EVENT_POLICY_VERDICT, MATCH_L3_L4, VERDICT_FORWARDED, CT_NEW, DIR_INGRESS),
            (EVENT_POLICY_VERDICT, MATCH_ALL, VERDICT_DROPPED, CT_NEW, DIR_EGRESS),
            (EVENT_POLICY_VERDICT, 0, VERDICT_DROPPED, CT_REOPENED, DIR_EGRESS),
            (9, 0, 0, 0, DIR_EGRESS),
            (dpdbg::kdrop::EVENT_KERNEL_DROP, 2, VERDICT_DROPPED, 0, DIR_INGRESS),
        ];
        let identities = [(IDENTITY_WORLD, 1000), (1000, IDENTITY_HOST), (300_000, 0), (0, 70_000)];
        let (mut n, mut scratch, mut remote_ids) = (0, String::new(), 0);
        // Named: identity 1000 labelled, the endpoints of record() named, and
        // the frames' addresses owned by named endpoints (one side or both).
        let mut names = Names::default();
        names.labels.insert(1000, vec!["k8s:app=web".into(), "k8s:tier=front".into()]);
        for k in 0..9u32 {
            for i in 0..4u32 {
                if (k + i) % 3 != 0 {
                    names.pods.insert(200 * k + i, PodName { namespace: "lab".into(), pod: format!("ep{k}-{i}") });
                }
            }
        }
        names.pods.insert(9_999, PodName { namespace: "other".into(), pod: "peer".into() });
        for f in frames() {
            if let Ok(p) = etherparse::SlicedPacket::from_ethernet(&f)
                && let Some(etherparse::NetSlice::Ipv4(ip)) = p.net
            {
                names.endpoints.insert(IpAddr::V4(ip.header().source_addr()), 9_999);
            }
        }
        for (k, &kind) in kinds.iter().enumerate() {
            for (i, ids) in identities.iter().enumerate() {
                for (j, frame) in frames().iter().enumerate() {
                    let rec = record(kind, 200 * k as u32 + i as u32, *ids, frame);
                    let ev = dpdbg::events::view(&rec).unwrap();
                    let d = Decoded::from_event(ev);
                    let offset = 1_764_000_000_000_000_000i128 + j as i128 * 999_999_937;
                    let (node, ifname) = ("node-a", if j % 2 == 0 { "lxc0a1b2c3" } else { "" });
                    let f = crate::convert::to_flow(ev, &d, offset, node, ifname, &names);
                    let id_of = |e: &Option<crate::flow::Endpoint>| e.as_ref().map_or(0, |e| e.id);
                    if [id_of(&f.source), id_of(&f.destination)].contains(&9_999) {
                        remote_ids += 1;
                    }
                    let want = GetFlowsResponse {
                        node_name: node.into(),
                        time: f.time,
                        response_types: Some(ResponseTypes::Flow(f)),
                    }
                    .encode_to_vec();
                    let mut ours = Vec::new();
                    flow_response(&mut ours, &mut scratch, ev, &d, offset, node, ifname, &names);
                    assert_eq!(ours, want, "kind {k}, identities {ids:?}, frame {j}");
                    n += 1;
                }
            }
        }
        assert_eq!(n, kinds.len() * 4 * 11);
        assert!(remote_ids > 0, "the other side, a local endpoint by its address, has its id");
    }
}
