use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use serde::Serialize;

/// What the captured bytes say, as far as they reach.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Packet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// IP protocol number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_proto: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// TCP flags byte (FIN 0x01 … CWR 0x80).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Ethertype when the frame is not IP (ARP …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ether_type: Option<u16>,
}

/// Decodes as much as the captured bytes hold; never fails, never panics.
pub fn decode_packet(data: &[u8]) -> Packet {
    let mut p = Packet::default();
    let Ok(s) = LaxSlicedPacket::from_ethernet(data) else {
        return p;
    };
    match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            p.src_ip = Some(IpAddr::V4(h.source_addr()));
            p.dst_ip = Some(IpAddr::V4(h.destination_addr()));
            p.ip_proto = Some(h.protocol().0);
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            p.src_ip = Some(IpAddr::V6(h.source_addr()));
            p.dst_ip = Some(IpAddr::V6(h.destination_addr()));
            p.ip_proto = Some(v6.payload().ip_number.0);
        }
        None => {
            if let Some(etherparse::LinkSlice::Ethernet2(e)) = &s.link {
                p.ether_type = Some(e.ether_type().0);
            }
        }
    }
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            p.src_port = Some(t.source_port());
            p.dst_port = Some(t.destination_port());
            // The flags byte, straight from the header.
            p.tcp_flags = t.slice().get(13).copied();
        }
        Some(TransportSlice::Udp(u)) => {
            p.src_port = Some(u.source_port());
            p.dst_port = Some(u.destination_port());
        }
        Some(TransportSlice::Icmpv4(i)) => {
            p.icmp_type = Some(i.type_u8());
            p.icmp_code = Some(i.code_u8());
        }
        Some(TransportSlice::Icmpv6(i)) => {
            p.icmp_type = Some(i.type_u8());
            p.icmp_code = Some(i.code_u8());
        }
        None => {}
    }
    p
}
