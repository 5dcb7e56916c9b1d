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
    fast(data).unwrap_or_else(|| lax(data))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The frames a datapath sees nearly always — Ethernet, IPv4 without
/// options or fragmentation or IPv6 without extension headers, then a whole
/// TCP, UDP or ICMP header — read in place. Anything else is left to
/// etherparse (None): it was a tenth of a monitor's time per event, and the
/// test below holds the two to the same answers.
fn fast(data: &[u8]) -> Option<Packet> {
    const ETH: usize = 14;
    let (src, dst, proto, l4) = match be16(data.get(..ETH)?, 12) {
        0x0800 => {
            let ip = data.get(ETH..ETH + 20)?;
            let total = be16(ip, 2) as usize;
            // Version 4, no options, not a fragment (MF clear, offset 0).
            if ip[0] != 0x45 || total < 20 || be16(ip, 6) & 0x3fff != 0 {
                return None;
            }
            let end = data.len().min(ETH + total);
            let a = |at: usize| IpAddr::from([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
            (a(12), a(16), ip[9], &data[ETH + 20..end])
        }
        0x86dd => {
            let ip = data.get(ETH..ETH + 40)?;
            let len = be16(ip, 4) as usize;
            // A zero payload length is a jumbogram's: etherparse's business.
            if ip[0] >> 4 != 6 || len == 0 {
                return None;
            }
            let end = data.len().min(ETH + 40 + len);
            let a = |at: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&ip[at..at + 16]);
                IpAddr::from(b)
            };
            (a(8), a(24), ip[6], &data[ETH + 40..end])
        }
        _ => return None,
    };
    let mut p = Packet { src_ip: Some(src), dst_ip: Some(dst), ip_proto: Some(proto), ..Packet::default() };
    let v6 = src.is_ipv6();
    match proto {
        6 => {
            let hl = (*l4.get(12)? >> 4) as usize * 4;
            if hl < 20 || l4.len() < hl {
                return None;
            }
            p.src_port = Some(be16(l4, 0));
            p.dst_port = Some(be16(l4, 2));
            p.tcp_flags = Some(l4[13]);
        }
        17 => {
            let h = l4.get(..8)?;
            p.src_port = Some(be16(h, 0));
            p.dst_port = Some(be16(h, 2));
        }
        1 if !v6 => {
            let h = l4.get(..8)?;
            // A timestamp request or reply (code 0) is a 20-byte header to
            // etherparse, which then wants all of it: its business.
            if matches!(h[0], 13 | 14) && h[1] == 0 {
                return None;
            }
            p.icmp_type = Some(h[0]);
            p.icmp_code = Some(h[1]);
        }
        58 if v6 => {
            let h = l4.get(..8)?;
            p.icmp_type = Some(h[0]);
            p.icmp_code = Some(h[1]);
        }
        _ => return None,
    }
    Some(p)
}

/// Whatever etherparse makes of the frame, laxly (cut short by the snap length).
fn lax(data: &[u8]) -> Packet {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frames() -> Vec<Vec<u8>> {
        use etherparse::PacketBuilder;
        let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let v4 = || eth().ipv4([10, 0, 1, 2], [10, 0, 1, 3], 64);
        let v6 = || eth().ipv6([0xfd; 16], [0xfe; 16], 64);
        let mut out = Vec::new();
        let payload = [7u8; 24];
        let mut w = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            out.push(v);
        };
        w(&|v| v4().tcp(1000, 80, 1, 1024).syn().write(v, &payload).unwrap());
        w(&|v| v4().tcp(1000, 80, 1, 1024).ack(5).psh().write(v, &payload).unwrap());
        w(&|v| v4().udp(53, 4000).write(v, &payload).unwrap());
        w(&|v| v4().icmpv4_echo_request(1, 2).write(v, &payload).unwrap());
        w(&|v| v6().tcp(1000, 443, 1, 1024).syn().ack(1).write(v, &payload).unwrap());
        w(&|v| v6().udp(53, 4000).write(v, &payload).unwrap());
        w(&|v| v6().icmpv6_echo_request(1, 2).write(v, &payload).unwrap());
        // The other family's ICMP: the protocol number changed by hand.
        let mut x = out[5].clone();
        x[14 + 6] = 1;
        out.push(x);
        let mut x = out[2].clone();
        x[14 + 9] = 58;
        out.push(x);
        out
    }

    #[test]
    fn the_fast_path_takes_the_common_frames() {
        for f in frames().iter().take(7) {
            assert!(fast(f).is_some(), "{f:02x?}");
            assert_eq!(decode_packet(f), lax(f));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Any frame — the common ones cut short anywhere and with any
        /// byte changed, and random bytes — decodes the same on both paths.
        #[test]
        fn fast_and_etherparse_agree(
            which in 0usize..10,
            cut in 0usize..200,
            edits in proptest::collection::vec((0usize..120, any::<u8>()), 0..4),
            noise in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut f = frames().get(which).cloned().unwrap_or(noise);
            for (at, b) in edits {
                if let Some(x) = f.get_mut(at) {
                    *x = b;
                }
            }
            f.truncate(cut);
            if let Some(p) = fast(&f) {
                prop_assert_eq!(p, lax(&f), "{:02x?}", f);
            }
        }
    }
}
