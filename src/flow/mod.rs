//! Flows: a datapath event with its packet decoded, in the operator's words;
//! filters over them; one-line and verbose text.

mod format;
mod packet;

use std::net::IpAddr;

use serde::Serialize;

pub use format::{hexdump, write_line, write_verbose};
pub use packet::{Packet, decode_packet};

use crate::abi::{self, Reason, match_kind_text};
use crate::events::Event;

/// The event's type as hubble and cilium-dbg monitor name it.
pub fn type_name(t: u8) -> &'static str {
    match t {
        abi::EVENT_DROP => "drop",
        abi::EVENT_TRACE => "trace",
        abi::EVENT_POLICY_VERDICT => "policy-verdict",
        _ => "unknown",
    }
}

pub fn verdict_name(v: u8) -> &'static str {
    match v {
        abi::VERDICT_FORWARDED => "FORWARDED",
        abi::VERDICT_DROPPED => "DROPPED",
        _ => "VERDICT_UNKNOWN",
    }
}

pub fn observation_point(subtype: u8) -> &'static str {
    match subtype {
        abi::TRACE_TO_ENDPOINT => "to-endpoint",
        abi::TRACE_FROM_ENDPOINT => "from-endpoint",
        _ => "unknown",
    }
}

/// One event as scripts see it (`-o jsonl`): field names are stable.
#[derive(Clone, Debug, Serialize)]
pub struct Flow {
    /// CLOCK_MONOTONIC nanoseconds, as the datapath stamped the event.
    pub timestamp_ns: u64,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub verdict: &'static str,
    /// Drop reason number and text (drop events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason_desc: Option<&'static str>,
    /// to-endpoint or from-endpoint (trace events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation_point: Option<&'static str>,
    /// L3-L4, L3-Only, L4-Only, all or none (policy verdict events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_match: Option<&'static str>,
    /// A deny rule decided although an allow rule matched too (policy verdict events).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deny_overrode_allow: bool,
    /// The packet is a fragment of a larger datagram.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fragment: bool,
    pub ct_state: &'static str,
    pub direction: &'static str,
    pub ifindex: u32,
    pub endpoint_id: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub orig_len: u32,
    pub cap_len: u32,
    #[serde(flatten)]
    pub packet: Packet,
}

impl Flow {
    pub fn from_event(e: &Event) -> Flow {
        let h = &e.hdr;
        let is = |t| h.r#type == t;
        Flow {
            timestamp_ns: h.timestamp_ns,
            event_type: type_name(h.r#type),
            verdict: verdict_name(h.verdict),
            drop_reason: is(abi::EVENT_DROP).then_some(h.subtype),
            drop_reason_desc: is(abi::EVENT_DROP).then(|| Reason(h.subtype).text()),
            observation_point: is(abi::EVENT_TRACE).then(|| observation_point(h.subtype)),
            policy_match: is(abi::EVENT_POLICY_VERDICT).then(|| match_kind_text(h.subtype)),
            deny_overrode_allow: is(abi::EVENT_POLICY_VERDICT) && h.flags & abi::EVF_DENY_OVERRODE_ALLOW != 0,
            fragment: h.flags & abi::EVF_FRAGMENT != 0,
            ct_state: abi::ct_state_text(h.ct_state),
            direction: abi::direction_text(h.direction),
            ifindex: h.ifindex,
            endpoint_id: h.endpoint_id,
            src_identity: h.src_identity,
            dst_identity: h.dst_identity,
            orig_len: h.orig_len,
            cap_len: h.cap_len,
            packet: decode_packet(&e.data),
        }
    }
}

/// Which verdict a filter keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictFilter {
    Allow,
    Deny,
}

/// Filters combine with AND; an empty filter keeps everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Event types to keep (abi::EVENT_*); empty keeps all.
    pub types: Vec<u8>,
    /// Packets the endpoint sent.
    pub from_endpoint: Option<u32>,
    /// Packets sent to the endpoint.
    pub to_endpoint: Option<u32>,
    /// Events of the endpoint, either way.
    pub related_to: Option<u32>,
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub proto: Option<u8>,
    pub verdict: Option<VerdictFilter>,
    /// Keep events stamped at or after this CLOCK_MONOTONIC time.
    pub since_ns: Option<u64>,
    /// Keep events stamped before this CLOCK_MONOTONIC time.
    pub until_ns: Option<u64>,
}

impl Filter {
    /// Whether only the header is needed (no packet decode) to decide.
    fn needs_packet(&self) -> bool {
        self.ip.is_some() || self.port.is_some()
    }

    pub fn matches_event(&self, e: &Event, pkt: Option<&Packet>) -> bool {
        let h = &e.hdr;
        if !self.types.is_empty() && !self.types.contains(&h.r#type) {
            return false;
        }
        let sent = h.direction == abi::DIR_EGRESS;
        if self.from_endpoint.is_some_and(|id| !(sent && h.endpoint_id == id)) {
            return false;
        }
        if self.to_endpoint.is_some_and(|id| sent || h.endpoint_id != id) {
            return false;
        }
        if self.related_to.is_some_and(|id| h.endpoint_id != id) {
            return false;
        }
        if self.proto.is_some_and(|p| p != h.proto) {
            return false;
        }
        match self.verdict {
            Some(VerdictFilter::Allow) if h.verdict != abi::VERDICT_FORWARDED => return false,
            Some(VerdictFilter::Deny) if h.verdict != abi::VERDICT_DROPPED => return false,
            _ => {}
        }
        if self.since_ns.is_some_and(|t| h.timestamp_ns < t) || self.until_ns.is_some_and(|t| h.timestamp_ns >= t) {
            return false;
        }
        if self.needs_packet() {
            let owned;
            let p = match pkt {
                Some(p) => p,
                None => {
                    owned = decode_packet(&e.data);
                    &owned
                }
            };
            if self.ip.is_some_and(|ip| p.src_ip != Some(ip) && p.dst_ip != Some(ip)) {
                return false;
            }
            if self.port.is_some_and(|port| p.src_port != Some(port) && p.dst_port != Some(port)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode;

    fn record(event_type: u8, subtype: u8, verdict: u8, dir: u8, ep: u32, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 40];
        r[8] = event_type;
        r[9] = subtype;
        r[10] = verdict;
        r[12] = dir;
        r[14] = 17;
        r[20..24].copy_from_slice(&ep.to_le_bytes());
        r[32..36].copy_from_slice(&(data.len() as u32).to_le_bytes());
        r[36..40].copy_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"x")
            .unwrap();
        out
    }

    #[test]
    fn filters_select_exactly_what_they_say() {
        let a = udp([10, 0, 0, 1], [10, 0, 0, 2], 1111, 53);
        let evs: Vec<_> = [
            record(abi::EVENT_TRACE, 5, 1, abi::DIR_EGRESS, 1, &a),
            record(abi::EVENT_TRACE, 0, 1, abi::DIR_INGRESS, 2, &a),
            record(abi::EVENT_DROP, 133, 2, abi::DIR_INGRESS, 2, &a),
            record(abi::EVENT_POLICY_VERDICT, 1, 2, abi::DIR_INGRESS, 2, &udp([10, 0, 0, 9], [10, 0, 0, 2], 7, 80)),
        ]
        .iter()
        .map(|r| decode(r).unwrap())
        .collect();
        let sel = |f: Filter| -> Vec<usize> { (0..evs.len()).filter(|&i| f.matches_event(&evs[i], None)).collect() };
        assert_eq!(sel(Filter::default()), vec![0, 1, 2, 3]);
        assert_eq!(sel(Filter { types: vec![abi::EVENT_DROP], ..Default::default() }), vec![2]);
        assert_eq!(sel(Filter { from_endpoint: Some(1), ..Default::default() }), vec![0]);
        assert_eq!(sel(Filter { to_endpoint: Some(2), ..Default::default() }), vec![1, 2, 3]);
        assert_eq!(sel(Filter { related_to: Some(1), ..Default::default() }), vec![0]);
        assert_eq!(sel(Filter { verdict: Some(VerdictFilter::Deny), ..Default::default() }), vec![2, 3]);
        assert_eq!(sel(Filter { verdict: Some(VerdictFilter::Allow), ..Default::default() }), vec![0, 1]);
        assert_eq!(sel(Filter { ip: Some("10.0.0.9".parse().unwrap()), ..Default::default() }), vec![3]);
        assert_eq!(sel(Filter { port: Some(53), ..Default::default() }), vec![0, 1, 2]);
        assert_eq!(sel(Filter { proto: Some(6), ..Default::default() }), Vec::<usize>::new());
        assert_eq!(
            sel(Filter {
                port: Some(80),
                types: vec![abi::EVENT_POLICY_VERDICT],
                to_endpoint: Some(2),
                ..Default::default()
            }),
            vec![3]
        );
    }

    #[test]
    fn one_line_shapes() {
        let a = udp([10, 0, 0, 1], [10, 0, 0, 2], 1111, 53);
        let line = |r: Vec<u8>| {
            let mut s = String::new();
            write_line(&mut s, &Flow::from_event(&decode(&r).unwrap())).unwrap();
            s
        };
        assert_eq!(
            line(record(abi::EVENT_DROP, 133, 2, abi::DIR_INGRESS, 2, &a)),
            "xx drop (Policy denied) to endpoint 2, ifindex 0, identity 0->0: 10.0.0.1:1111 -> 10.0.0.2:53 udp"
        );
        assert_eq!(
            line(record(abi::EVENT_TRACE, 5, 1, abi::DIR_EGRESS, 1, &a)),
            "<- endpoint 1, identity 0->0 state unknown ifindex 0: 10.0.0.1:1111 -> 10.0.0.2:53 udp"
        );
        assert!(line(record(abi::EVENT_POLICY_VERDICT, 2, 1, abi::DIR_INGRESS, 2, &a)).starts_with(
            "Policy verdict log: local EP ID 2, remote ID 0, proto 17, ingress, action allow, match L3-Only, "
        ));
        // A deny that won over an allow says so; the state of a related packet is named.
        let mut r = record(abi::EVENT_POLICY_VERDICT, abi::MATCH_L4_ONLY, 2, abi::DIR_INGRESS, 2, &a);
        r[15] = abi::EVF_DENY_OVERRODE_ALLOW;
        let f = Flow::from_event(&decode(&r).unwrap());
        assert!(f.deny_overrode_allow);
        assert!(line(r).contains("action deny, match L4-Only (deny overrode allow), "));
        let mut r = record(abi::EVENT_TRACE, 0, 1, abi::DIR_INGRESS, 2, &a);
        r[11] = abi::CT_RELATED;
        assert!(line(r).contains("state related "));
        let json = serde_json::to_value(Flow::from_event(&decode(&record(abi::EVENT_TRACE, 0, 1, 0, 2, &a)).unwrap()))
            .unwrap();
        assert!(json.get("deny_overrode_allow").is_none() && json.get("fragment").is_none(), "{json}");
    }

    #[test]
    fn verbose_shows_every_layer() {
        use etherparse::{PacketBuilder, TcpOptionElement};
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .single_vlan(etherparse::VlanId::try_new(42).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 80, 77, 512)
            .syn()
            .options(&[TcpOptionElement::MaximumSegmentSize(1460), TcpOptionElement::WindowScale(7)])
            .unwrap()
            .write(&mut v, &[])
            .unwrap();
        let mut s = String::new();
        write_verbose(&mut s, &v).unwrap();
        assert!(s.contains("Ethernet  02:02:02:02:02:02 -> 04:04:04:04:04:04"), "{s}");
        assert!(s.contains("VLAN      id 42"), "{s}");
        assert!(s.contains("IPv4      10.0.0.1 -> 10.0.0.2 ihl 5"), "{s}");
        assert!(s.contains("TCP       1000 -> 80 [SYN] seq 77 ack 0 win 512 urg 0 options [mss 1460, wscale 7"), "{s}");

        let mut v = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([0xfd; 16], [0xfe; 16], 9)
            .icmpv6_echo_request(5, 6)
            .write(&mut v, b"hi")
            .unwrap();
        let mut s = String::new();
        write_verbose(&mut s, &v).unwrap();
        assert!(s.contains("IPv6      fdfd:") && s.contains("hlim 9"), "{s}");
        assert!(s.contains("ICMPv6    type 128 code 0"), "{s}");

        let mut arp = vec![0xffu8; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let mut s = String::new();
        write_verbose(&mut s, &arp).unwrap();
        assert!(s.contains("ARP       op 1 sender 10.0.0.1 target 10.0.0.2"), "{s}");
    }

    #[test]
    fn garbage_never_panics() {
        // A fixed-seed generator: the same inputs every run.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let good = udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        for i in 0..50_000 {
            let len = (next() % 360) as usize;
            let mut r: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && r.len() > 40 + good.len() {
                // Mostly valid: a real packet with some bytes flipped, cap_len kept honest.
                r[40..40 + good.len()].copy_from_slice(&good);
                let n = (next() % 8) as usize;
                for _ in 0..n {
                    let at = 40 + (next() as usize % good.len());
                    r[at] = next() as u8;
                }
                let cap = (r.len() - 40) as u32;
                r[36..40].copy_from_slice(&cap.to_le_bytes());
            }
            if let Ok(ev) = decode(&r) {
                let f = Flow::from_event(&ev);
                let mut s = String::new();
                write_line(&mut s, &f).unwrap();
                write_verbose(&mut s, &ev.data).unwrap();
                hexdump(&mut s, &ev.data).unwrap();
                serde_json::to_string(&f).unwrap();
            }
        }
    }
}
