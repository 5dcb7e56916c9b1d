//! The one flow filter: `monitor`'s flags, `observe`'s flags and the
//! server's GetFlows filters all become a [`Filters`], matched here against
//! the event header and its decoded packet, before any output is built.
//!
//! The semantics are Hubble's: every field set in one [`FlowFilter`] must
//! match, any value of a field matches, and a flow passes when some allow
//! filter matches (or there is none) and no deny filter does. dpdbg adds
//! "either side" fields (`ip`, `port`, `identity`, `endpoint`), which monitor
//! and cilium-dbg users expect, so one filter says "this address, either way".

use std::net::IpAddr;
use std::str::FromStr;

use super::Packet;
use crate::abi;
use crate::abi::record::EventRef;

/// An address or a prefix ("10.0.0.0/8", "fd00::1").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

/// A filter value that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not {expected}")]
pub struct FilterParseError {
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Cidr {
    type Err = FilterParseError;

    fn from_str(s: &str) -> Result<Cidr, FilterParseError> {
        let err = || FilterParseError { value: s.to_string(), expected: "an IP address or a CIDR like 10.0.0.0/8" };
        let (addr, len) = match s.split_once('/') {
            None => {
                let a: IpAddr = s.trim().parse().map_err(|_| err())?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
            Some((a, l)) => (a.trim().parse().map_err(|_| err())?, l.trim().parse::<u8>().map_err(|_| err())?),
        };
        if len > if addr.is_ipv4() { 32 } else { 128 } {
            return Err(err());
        }
        Ok(Cidr { addr, len })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl From<IpAddr> for Cidr {
    fn from(addr: IpAddr) -> Cidr {
        Cidr { addr, len: if addr.is_ipv4() { 32 } else { 128 } }
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - self.len as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX.checked_shl(128 - self.len as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// An event type, and its subtype when it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeMatch {
    pub r#type: u8,
    pub subtype: Option<u8>,
}

/// One filter: every non-empty field must match, any of its values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowFilter {
    pub event_type: Vec<TypeMatch>,
    /// `abi::VERDICT_*`.
    pub verdict: Vec<u8>,
    /// Drop reasons (drop events only).
    pub drop_reason: Vec<u8>,
    pub source_ip: Vec<Cidr>,
    pub destination_ip: Vec<Cidr>,
    /// Source or destination.
    pub ip: Vec<Cidr>,
    pub source_port: Vec<u16>,
    pub destination_port: Vec<u16>,
    /// Source or destination.
    pub port: Vec<u16>,
    /// IP protocol numbers.
    pub protocol: Vec<u8>,
    pub source_identity: Vec<u32>,
    pub destination_identity: Vec<u32>,
    /// Source or destination.
    pub identity: Vec<u32>,
    /// The endpoint that sent the packet (its egress).
    pub source_endpoint: Vec<u32>,
    /// The endpoint the packet was for (its ingress).
    pub destination_endpoint: Vec<u32>,
    /// The endpoint the event belongs to, either way.
    pub endpoint: Vec<u32>,
    /// TCP flag masks: a mask matches when every flag in it is set.
    pub tcp_flags: Vec<u8>,
    /// `abi::DIR_*`.
    pub traffic_direction: Vec<u8>,
    /// `abi::FAMILY_IPV4` or `abi::FAMILY_IPV6`.
    pub ip_version: Vec<u8>,
    /// Reply (true) or original (false) direction of a tracked connection.
    pub reply: Vec<bool>,
    /// Interface indexes.
    pub ifindex: Vec<u32>,
}

fn any<T>(list: &[T], f: impl FnMut(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

/// Whether the flow is a reply, as Hubble's `is_reply`: unknown outside conntrack.
pub fn is_reply(ct_state: u8) -> Option<bool> {
    match ct_state {
        abi::CT_REPLY => Some(true),
        abi::CT_NEW | abi::CT_ESTABLISHED | abi::CT_REOPENED => Some(false),
        _ => None,
    }
}

impl FlowFilter {
    /// Whether it keeps everything: no field set.
    pub fn is_empty(&self) -> bool {
        let FlowFilter {
            event_type,
            verdict,
            drop_reason,
            source_ip,
            destination_ip,
            ip,
            source_port,
            destination_port,
            port,
            protocol,
            source_identity,
            destination_identity,
            identity,
            source_endpoint,
            destination_endpoint,
            endpoint,
            tcp_flags,
            traffic_direction,
            ip_version,
            reply,
            ifindex,
        } = self;
        event_type.is_empty()
            && verdict.is_empty()
            && drop_reason.is_empty()
            && source_ip.is_empty()
            && destination_ip.is_empty()
            && ip.is_empty()
            && source_port.is_empty()
            && destination_port.is_empty()
            && port.is_empty()
            && protocol.is_empty()
            && source_identity.is_empty()
            && destination_identity.is_empty()
            && identity.is_empty()
            && source_endpoint.is_empty()
            && destination_endpoint.is_empty()
            && endpoint.is_empty()
            && tcp_flags.is_empty()
            && traffic_direction.is_empty()
            && ip_version.is_empty()
            && reply.is_empty()
            && ifindex.is_empty()
    }

    /// Whether deciding needs the packet decoded (the header alone does not say).
    pub fn needs_packet(&self) -> bool {
        !(self.source_ip.is_empty()
            && self.destination_ip.is_empty()
            && self.ip.is_empty()
            && self.source_port.is_empty()
            && self.destination_port.is_empty()
            && self.port.is_empty()
            && self.tcp_flags.is_empty())
    }

    /// Matches on the header alone; `packet` is consulted only for the
    /// fields that need it.
    pub fn matches<'a>(&self, e: impl Into<EventRef<'a>>, packet: &Packet) -> bool {
        let e = e.into();
        let h = &e.hdr;
        let egress = h.direction == abi::DIR_EGRESS;
        let ingress = h.direction == abi::DIR_INGRESS;
        let ip_in = |list: &[Cidr], ip: Option<IpAddr>| any(list, |c| ip.is_some_and(|ip| c.contains(ip)));
        let port_in = |list: &[u16], port: Option<u16>| any(list, |p| port == Some(*p));
        any(&self.event_type, |t| t.r#type == h.r#type && t.subtype.is_none_or(|s| s == h.subtype))
            && any(&self.verdict, |v| *v == h.verdict)
            && any(&self.drop_reason, |r| h.r#type == abi::EVENT_DROP && *r == h.subtype)
            && any(&self.traffic_direction, |d| *d == h.direction)
            && any(&self.source_identity, |i| *i == h.src_identity)
            && any(&self.destination_identity, |i| *i == h.dst_identity)
            && any(&self.identity, |i| *i == h.src_identity || *i == h.dst_identity)
            && any(&self.source_endpoint, |id| egress && *id == h.endpoint_id)
            && any(&self.destination_endpoint, |id| ingress && *id == h.endpoint_id)
            && any(&self.endpoint, |id| *id == h.endpoint_id)
            && any(&self.reply, |r| is_reply(h.ct_state) == Some(*r))
            && any(&self.ifindex, |i| *i == h.ifindex)
            && any(&self.protocol, |p| *p == h.proto)
            && ip_in(&self.source_ip, packet.src_ip)
            && ip_in(&self.destination_ip, packet.dst_ip)
            && any(&self.ip, |c| {
                packet.src_ip.is_some_and(|i| c.contains(i)) || packet.dst_ip.is_some_and(|i| c.contains(i))
            })
            && port_in(&self.source_port, packet.src_port)
            && port_in(&self.destination_port, packet.dst_port)
            && any(&self.port, |p| packet.src_port == Some(*p) || packet.dst_port == Some(*p))
            && any(&self.tcp_flags, |m| packet.ip_proto == Some(6) && packet.tcp_flags.is_some_and(|f| f & m == *m))
            && any(&self.ip_version, |v| *v == h.family)
    }
}

/// Allow and deny lists and a time window: the whole of a subscriber's filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// A flow passes when one of these matches; an empty list passes all.
    pub allow: Vec<FlowFilter>,
    /// A flow matching any of these is left out, whatever the allow list says.
    pub deny: Vec<FlowFilter>,
    /// Events stamped at or after this CLOCK_MONOTONIC time.
    pub since_ns: Option<u64>,
    /// Events stamped at or before this CLOCK_MONOTONIC time.
    pub until_ns: Option<u64>,
}

impl Filters {
    /// One allow filter and nothing else.
    pub fn only(f: FlowFilter) -> Filters {
        Filters { allow: vec![f], ..Filters::default() }
    }

    pub fn needs_packet(&self) -> bool {
        self.allow.iter().chain(&self.deny).any(FlowFilter::needs_packet)
    }

    /// Whether every event passes: no time window, no filter.
    pub fn passes_all(&self) -> bool {
        self.since_ns.is_none() && self.until_ns.is_none() && self.no_filter()
    }

    fn no_filter(&self) -> bool {
        self.deny.is_empty() && self.allow.iter().all(FlowFilter::is_empty)
    }

    /// Whether the event passes. `packet` is its decoded packet when the
    /// caller has it; otherwise it is decoded here, and only if a filter
    /// needs it.
    pub fn admits<'a>(&self, e: impl Into<EventRef<'a>>, packet: Option<&Packet>) -> bool {
        let e = e.into();
        let t = e.hdr.timestamp_ns;
        if self.since_ns.is_some_and(|s| t < s) || self.until_ns.is_some_and(|u| t > u) {
            return false;
        }
        if self.no_filter() {
            return true;
        }
        let owned;
        let p = match packet {
            Some(p) => p,
            None if self.needs_packet() => {
                owned = super::decode_packet(e.data);
                &owned
            }
            None => {
                owned = Packet::default();
                &owned
            }
        };
        (self.allow.is_empty() || self.allow.iter().any(|f| f.matches(e, p)))
            && !self.deny.iter().any(|f| f.matches(e, p))
    }
}

/// TCP flags by name ("SYN", "syn,ack", "SA"), as hubble's and tcpdump's users write them.
pub fn parse_tcp_flags(s: &str) -> Result<u8, FilterParseError> {
    let err = || FilterParseError {
        value: s.to_string(),
        expected: "TCP flags like SYN,ACK (FIN SYN RST PSH ACK URG ECE CWR)",
    };
    let mut mask = 0u8;
    for part in s.split(',').map(str::trim) {
        mask |= match part.to_ascii_uppercase().as_str() {
            "FIN" => 0x01,
            "SYN" => 0x02,
            "RST" => 0x04,
            "PSH" => 0x08,
            "ACK" => 0x10,
            "URG" => 0x20,
            "ECE" => 0x40,
            "CWR" => 0x80,
            _ => return Err(err()),
        };
    }
    Ok(mask)
}

/// A protocol by name or number; "icmp" means both ICMP and ICMPv6, as in Hubble.
pub fn parse_protocol(s: &str) -> Result<Vec<u8>, FilterParseError> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "tcp" => vec![6],
        "udp" => vec![17],
        "icmp" => vec![1, 58],
        "icmpv4" => vec![1],
        "icmpv6" => vec![58],
        "sctp" => vec![132],
        "gre" => vec![47],
        other => vec![other.parse::<u8>().map_err(|_| FilterParseError {
            value: s.to_string(),
            expected: "a protocol: tcp, udp, icmp, icmpv4, icmpv6, sctp, gre or a number 0-255",
        })?],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::EventHdr;
    use crate::abi::record::Event;

    fn event(f: impl FnOnce(&mut EventHdr)) -> Event {
        let mut hdr = EventHdr {
            r#type: abi::EVENT_TRACE,
            subtype: abi::TRACE_FROM_ENDPOINT,
            verdict: abi::VERDICT_FORWARDED,
            direction: abi::DIR_EGRESS,
            ct_state: abi::CT_NEW,
            proto: 6,
            family: abi::FAMILY_IPV4,
            endpoint_id: 7,
            src_identity: 1001,
            dst_identity: 2,
            ifindex: 11,
            timestamp_ns: 1_000,
            ..Default::default()
        };
        f(&mut hdr);
        Event { hdr, data: vec![] }
    }

    fn tcp_syn() -> Packet {
        Packet {
            src_ip: Some("10.0.0.1".parse().unwrap()),
            dst_ip: Some("192.0.2.7".parse().unwrap()),
            ip_proto: Some(6),
            src_port: Some(40000),
            dst_port: Some(80),
            tcp_flags: Some(0x02),
            ..Default::default()
        }
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.9.9.9".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::ffff:10.0.0.1".parse().unwrap()), "families never match across");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        let one: Cidr = "fd00::1".parse().unwrap();
        assert!(one.contains("fd00::1".parse().unwrap()) && !one.contains("fd00::2".parse().unwrap()));
        for bad in ["10.0.0.0/33", "fd00::/129", "10.0.0", "x/8", "10.0.0.0/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn table_of_filters() {
        let e = event(|_| {});
        let p = tcp_syn();
        let ip = |s: &str| s.parse::<Cidr>().unwrap();
        let cases: Vec<(FlowFilter, bool)> = vec![
            (FlowFilter::default(), true),
            (FlowFilter { source_ip: vec![ip("10.0.0.0/8")], ..Default::default() }, true),
            (FlowFilter { source_ip: vec![ip("10.0.0.2"), ip("10.0.0.1")], ..Default::default() }, true),
            (FlowFilter { destination_ip: vec![ip("10.0.0.0/8")], ..Default::default() }, false),
            (FlowFilter { ip: vec![ip("192.0.2.0/24")], ..Default::default() }, true),
            (FlowFilter { destination_port: vec![80], ..Default::default() }, true),
            (FlowFilter { source_port: vec![80], ..Default::default() }, false),
            (FlowFilter { port: vec![40000], ..Default::default() }, true),
            (FlowFilter { protocol: vec![6], ..Default::default() }, true),
            (FlowFilter { protocol: vec![17], ..Default::default() }, false),
            (FlowFilter { verdict: vec![abi::VERDICT_DROPPED], ..Default::default() }, false),
            (FlowFilter { source_identity: vec![1001], destination_identity: vec![2], ..Default::default() }, true),
            (FlowFilter { identity: vec![2], ..Default::default() }, true),
            (FlowFilter { source_endpoint: vec![7], ..Default::default() }, true),
            (FlowFilter { destination_endpoint: vec![7], ..Default::default() }, false),
            (FlowFilter { endpoint: vec![7], ..Default::default() }, true),
            (FlowFilter { tcp_flags: vec![0x02], ..Default::default() }, true),
            (FlowFilter { tcp_flags: vec![0x12], ..Default::default() }, false),
            (FlowFilter { traffic_direction: vec![abi::DIR_INGRESS], ..Default::default() }, false),
            (FlowFilter { ip_version: vec![4], ..Default::default() }, true),
            (FlowFilter { ip_version: vec![6], ..Default::default() }, false),
            (FlowFilter { reply: vec![false], ..Default::default() }, true),
            (FlowFilter { ifindex: vec![11], ..Default::default() }, true),
            (FlowFilter { ifindex: vec![12], ..Default::default() }, false),
            (FlowFilter { drop_reason: vec![133], ..Default::default() }, false),
            (
                FlowFilter {
                    event_type: vec![TypeMatch { r#type: abi::EVENT_TRACE, subtype: Some(abi::TRACE_TO_ENDPOINT) }],
                    ..Default::default()
                },
                false,
            ),
            (
                FlowFilter {
                    event_type: vec![TypeMatch { r#type: abi::EVENT_TRACE, subtype: None }],
                    ..Default::default()
                },
                true,
            ),
        ];
        for (i, (filter, want)) in cases.iter().enumerate() {
            assert_eq!(filter.matches(&e, &p), *want, "case {i}: {filter:?}");
        }
        let http = FlowFilter { destination_port: vec![80], ..Default::default() };
        let ten = FlowFilter { source_ip: vec![ip("10.0.0.0/8")], ..Default::default() };
        let f = |allow: Vec<FlowFilter>, deny: Vec<FlowFilter>| Filters { allow, deny, ..Default::default() };
        assert!(f(vec![http.clone()], vec![]).admits(&e, Some(&p)));
        assert!(!f(vec![http.clone()], vec![ten.clone()]).admits(&e, Some(&p)), "the deny list wins");
        assert!(!f(vec![], vec![ten]).admits(&e, Some(&p)));
        assert!(f(vec![], vec![]).admits(&e, Some(&p)));
        let window = Filters { since_ns: Some(1_000), until_ns: Some(1_000), ..Default::default() };
        assert!(window.admits(&e, None), "both bounds are inclusive");
        assert!(!Filters { since_ns: Some(1_001), ..Default::default() }.admits(&e, None));
        assert!(!Filters { until_ns: Some(999), ..Default::default() }.admits(&e, None));
        let drop = event(|h| {
            h.r#type = abi::EVENT_DROP;
            h.subtype = 133;
        });
        assert!(FlowFilter { drop_reason: vec![133], ..Default::default() }.matches(&drop, &p));
    }

    #[test]
    fn names() {
        assert_eq!(parse_tcp_flags("syn, ACK"), Ok(0x12));
        assert!(parse_tcp_flags("SYN,BOGUS").is_err());
        assert_eq!(parse_protocol("ICMP"), Ok(vec![1, 58]));
        assert_eq!(parse_protocol("132"), Ok(vec![132]));
        assert!(parse_protocol("tcpx").is_err());
    }
}
