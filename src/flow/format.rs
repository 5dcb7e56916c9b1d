use std::fmt::{self, Write};
use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};

use super::{Flow, Packet};

const TCP_FLAG_NAMES: [(u8, &str); 8] = [
    (0x02, "SYN"),
    (0x10, "ACK"),
    (0x01, "FIN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x20, "URG"),
    (0x40, "ECE"),
    (0x80, "CWR"),
];

/// Each octet's decimal digits, padded to three, and how many count: a
/// dotted quad is put together from these with fixed-size copies.
const OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, o) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            [b'0' + h, b'0' + d, b'0' + o, 3]
        } else if i >= 10 {
            [b'0' + d, b'0' + o, 0, 2]
        } else {
            [b'0' + o, 0, 0, 1]
        };
        i += 1;
    }
    t
};

/// The longest dotted quad is 15 bytes; the last octet's copy may write 2 past it.
type QuadBuf = [u8; 18];

fn quad(octets: [u8; 4], buf: &mut QuadBuf) -> usize {
    let mut n = 0;
    for (i, o) in octets.iter().enumerate() {
        let t = OCTETS[*o as usize];
        buf[n..n + 3].copy_from_slice(&t[..3]);
        n += t[3] as usize;
        if i < 3 {
            buf[n] = b'.';
            n += 1;
        }
    }
    n
}

/// An address as text, appended. IPv4, the common case, is put together
/// without the formatting machinery: `Ipv4Addr`'s Display, and then a push
/// per octet, were the largest costs of a printed line.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    // SAFETY: push_ip_bytes appends an address's text, which is ASCII.
    push_ip_bytes(unsafe { out.as_mut_vec() }, ip);
}

/// As `push_ip`, into bytes (JSON lines).
pub fn push_ip_bytes(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b: QuadBuf = [0; 18];
            let n = quad(v4.octets(), &mut b);
            out.extend_from_slice(&b[..n]);
        }
        IpAddr::V6(v6) => {
            let _ = std::io::Write::write_fmt(out, format_args!("{v6}"));
        }
    }
}

pub fn ip_text(ip: IpAddr) -> String {
    let mut s = String::with_capacity(15);
    push_ip(&mut s, ip);
    s
}

fn addr(out: &mut String, ip: IpAddr, port: Option<u16>) {
    let bracket = ip.is_ipv6() && port.is_some();
    if bracket {
        out.push('[');
    }
    push_ip(out, ip);
    if bracket {
        out.push(']');
    }
    if let Some(p) = port {
        out.push(':');
        out.push_str(itoa::Buffer::new().format(p));
    }
}

/// The name of an IP protocol monitor and the dashboard print by name.
pub fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        1 => Some("icmp"),
        6 => Some("tcp"),
        17 => Some("udp"),
        58 => Some("icmpv6"),
        _ => None,
    }
}

/// `10.0.1.2:45678 -> 10.0.1.3:80 tcp SYN`, as far as the capture reaches.
pub fn write_summary(out: &mut String, p: &Packet) -> fmt::Result {
    let (Some(src), Some(dst)) = (p.src_ip, p.dst_ip) else {
        return match p.ether_type {
            Some(0x0806) => out.write_str("ARP"),
            Some(t) => write!(out, "ethertype {t:#06x}"),
            None => out.write_str("(packet not captured)"),
        };
    };
    addr(out, src, p.src_port);
    out.push_str(" -> ");
    addr(out, dst, p.dst_port);
    if let Some(proto) = p.ip_proto {
        match proto_name(proto) {
            None => {
                out.push_str(" proto ");
                out.push_str(itoa::Buffer::new().format(proto));
            }
            Some(name) => {
                out.push(' ');
                out.push_str(name);
            }
        }
    }
    if let Some(flags) = p.tcp_flags {
        for (bit, name) in TCP_FLAG_NAMES {
            if flags & bit != 0 {
                out.push(' ');
                out.push_str(name);
            }
        }
    }
    if let Some(t) = p.icmp_type {
        let name = match (p.ip_proto, t) {
            (Some(1), 8) | (Some(58), 128) => "EchoRequest",
            (Some(1), 0) | (Some(58), 129) => "EchoReply",
            (Some(1), 3) | (Some(58), 1) => "DestinationUnreachable",
            (Some(58), 135) => "NeighborSolicitation",
            (Some(58), 136) => "NeighborAdvertisement",
            _ => "",
        };
        if name.is_empty() {
            write!(out, " type {t} code {}", p.icmp_code.unwrap_or(0))?;
        } else {
            out.push(' ');
            out.push_str(name);
        }
    }
    Ok(())
}

/// The flags byte's names in cilium's summary order (SYN ACK RST FIN PSH
/// URG ECE CWR; pkg/hubble/parser/threefour's getTCPFlags, whose ninth, NS,
/// the datapath's flags byte does not carry).
const HUBBLE_TCP_FLAGS: [(u8, &str); 8] = [
    (0x02, "SYN"),
    (0x10, "ACK"),
    (0x04, "RST"),
    (0x01, "FIN"),
    (0x08, "PSH"),
    (0x20, "URG"),
    (0x40, "ECE"),
    (0x80, "CWR"),
];

/// An ICMPv4 type and code as gopacket's `ICMPv4TypeCode.String()` writes
/// them (what cilium's summary prints after "ICMPv4 "): `EchoRequest`,
/// `DestinationUnreachable(Port)`, `EchoReply(Code: 3)`, `42(0)`.
fn push_icmpv4(out: &mut String, t: u8, c: u8) {
    let (name, codes): (&str, &[(u8, &str)]) = match t {
        0 => ("EchoReply", &[]),
        3 => (
            "DestinationUnreachable",
            &[
                (0, "Net"),
                (1, "Host"),
                (2, "Protocol"),
                (3, "Port"),
                (4, "FragmentationNeeded"),
                (5, "SourceRoutingFailed"),
                (6, "NetUnknown"),
                (7, "HostUnknown"),
                (8, "SourceIsolated"),
                (9, "NetAdminProhibited"),
                (10, "HostAdminProhibited"),
                (11, "NetTOS"),
                (12, "HostTOS"),
                (13, "CommAdminProhibited"),
                (14, "HostPrecedence"),
                (15, "PrecedenceCutoff"),
            ],
        ),
        4 => ("SourceQuench", &[]),
        5 => ("Redirect", &[(0, "Net"), (1, "Host"), (2, "TOS+Net"), (3, "TOS+Host")]),
        8 => ("EchoRequest", &[]),
        9 => ("RouterAdvertisement", &[]),
        10 => ("RouterSolicitation", &[]),
        11 => ("TimeExceeded", &[(0, "TTLExceeded"), (1, "FragmentReassemblyTimeExceeded")]),
        12 => ("ParameterProblem", &[(0, "PointerIndicatesError"), (1, "MissingOption"), (2, "BadLength")]),
        13 => ("TimestampRequest", &[]),
        14 => ("TimestampReply", &[]),
        15 => ("InfoRequest", &[]),
        16 => ("InfoReply", &[]),
        17 => ("AddressMaskRequest", &[]),
        18 => ("AddressMaskReply", &[]),
        _ => return push_unknown_icmp(out, t, c),
    };
    push_icmp_code(out, name, codes, c);
}

/// As `push_icmpv4`, for ICMPv6 (gopacket's `ICMPv6TypeCode.String()`).
fn push_icmpv6(out: &mut String, t: u8, c: u8) {
    let (name, codes): (&str, &[(u8, &str)]) = match t {
        1 => (
            "DestinationUnreachable",
            &[
                (0, "NoRouteToDst"),
                (1, "AdminProhibited"),
                (2, "BeyondScopeOfSrc"),
                (3, "AddressUnreachable"),
                (4, "PortUnreachable"),
                (5, "SrcAddressFailedPolicy"),
                (6, "RejectRouteToDst"),
            ],
        ),
        2 => ("PacketTooBig", &[]),
        3 => ("TimeExceeded", &[(0, "HopLimitExceeded"), (1, "FragmentReassemblyTimeExceeded")]),
        4 => (
            "ParameterProblem",
            &[(0, "ErroneousHeaderField"), (1, "UnrecognizedNextHeader"), (2, "UnrecognizedIPv6Option")],
        ),
        128 => ("EchoRequest", &[]),
        129 => ("EchoReply", &[]),
        133 => ("RouterSolicitation", &[]),
        134 => ("RouterAdvertisement", &[]),
        135 => ("NeighborSolicitation", &[]),
        136 => ("NeighborAdvertisement", &[]),
        137 => ("Redirect", &[]),
        _ => return push_unknown_icmp(out, t, c),
    };
    push_icmp_code(out, name, codes, c);
}

/// gopacket's rule: a type without codes prints its name alone when the
/// code is 0; a code it has no name for prints `(Code: N)`.
fn push_icmp_code(out: &mut String, name: &str, codes: &[(u8, &str)], c: u8) {
    out.push_str(name);
    if codes.is_empty() && c == 0 {
        return;
    }
    match codes.iter().find(|(n, _)| *n == c) {
        Some((_, code)) => {
            out.push('(');
            out.push_str(code);
        }
        None => {
            out.push_str("(Code: ");
            out.push_str(itoa::Buffer::new().format(c));
        }
    }
    out.push(')');
}

fn push_unknown_icmp(out: &mut String, t: u8, c: u8) {
    out.push_str(itoa::Buffer::new().format(t));
    out.push('(');
    out.push_str(itoa::Buffer::new().format(c));
    out.push(')');
}

/// A flow's `Summary` as cilium's Hubble parser fills it for L3/L4 flows
/// (pkg/hubble/parser/threefour: the name of the last layer it decoded,
/// the TCP flags or the ICMP type spelled out): `TCP Flags: ACK, FIN`,
/// `UDP`, `ICMPv4 EchoRequest`, `ICMPv6 DestinationUnreachable(Port)`;
/// `IPv4`/`IPv6` when no L4 header was decoded (another protocol, a
/// fragment), `Ethernet` for a frame that is not IP (ARP), and nothing
/// when not even Ethernet was captured. The monitor's line stays in
/// `write_line`.
pub fn write_hubble_summary(out: &mut String, p: &Packet) {
    let Some(src) = p.src_ip else {
        if p.ether_type.is_some() {
            out.push_str("Ethernet");
        }
        return;
    };
    match (p.ip_proto, p.tcp_flags, p.src_port, p.icmp_type) {
        (Some(6), Some(flags), _, _) => {
            out.push_str("TCP Flags: ");
            let mut first = true;
            for (bit, name) in HUBBLE_TCP_FLAGS {
                if flags & bit != 0 {
                    if !first {
                        out.push_str(", ");
                    }
                    out.push_str(name);
                    first = false;
                }
            }
        }
        (Some(17), _, Some(_), _) => out.push_str("UDP"),
        (Some(1), _, _, Some(t)) => {
            out.push_str("ICMPv4 ");
            push_icmpv4(out, t, p.icmp_code.unwrap_or(0));
        }
        (Some(58), _, _, Some(t)) => {
            out.push_str("ICMPv6 ");
            push_icmpv6(out, t, p.icmp_code.unwrap_or(0));
        }
        _ => out.push_str(if src.is_ipv4() { "IPv4" } else { "IPv6" }),
    }
}

/// How one-line text is written beyond its fixed shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineOptions<'a> {
    /// Identities as numbers only (`-n`): no "world", "host".
    pub numeric: bool,
    /// The interface's name, when the flow does not carry it: a reader
    /// keeps the names and lends one per line instead of a String per flow.
    pub interface: Option<&'a str>,
    /// The event's endpoint's name (`lab/ep1`), lent the same way: written
    /// beside its id as the interface's beside its index, not with `numeric`.
    pub endpoint: Option<&'a str>,
}

/// One line per event, in the shape of `cilium-dbg monitor`.
pub fn write_line(out: &mut String, f: &Flow) -> fmt::Result {
    write_line_with(out, f, LineOptions::default())
}

/// One line per event, with the wall-clock time first when the flow has one.
pub fn write_line_with(out: &mut String, f: &Flow, o: LineOptions<'_>) -> fmt::Result {
    // Pushed straight onto the String, numbers through itoa: this runs for
    // every event a monitor prints and every flow a server sends. `write!`,
    // and then pieces through a `dyn Write`, cost more than the text itself;
    // the fixed pieces now compile to fixed-size copies.
    let mut n = itoa::Buffer::new();
    let ingress = f.direction == "ingress";
    if let Some(t) = &f.time {
        out.push_str(t);
        out.push(' ');
    }
    let identity = |out: &mut String, id: u32| match (id, o.numeric) {
        (crate::abi::IDENTITY_HOST, false) => out.push_str("host"),
        (crate::abi::IDENTITY_WORLD, false) => out.push_str("world"),
        (id, _) => out.push_str(itoa::Buffer::new().format(id)),
    };
    let endpoint = |out: &mut String| {
        out.push_str(itoa::Buffer::new().format(f.endpoint_id));
        if let Some(name) = o.endpoint.filter(|_| !o.numeric) {
            out.push_str(" (");
            out.push_str(name);
            out.push(')');
        }
    };
    let ifx = |out: &mut String| {
        out.push_str("ifindex ");
        out.push_str(itoa::Buffer::new().format(f.ifindex));
        if let Some(name) = f.interface.as_deref().or(o.interface) {
            out.push_str(" (");
            out.push_str(name);
            out.push(')');
        }
    };
    match f.event_type {
        "trace" => {
            out.push_str(if ingress { "-> endpoint " } else { "<- endpoint " });
            endpoint(out);
            out.push_str(", identity ");
            identity(out, f.src_identity);
            out.push_str("->");
            identity(out, f.dst_identity);
            out.push_str(" state ");
            out.push_str(f.ct_state);
            out.push(' ');
            ifx(out);
            out.push_str(": ");
        }
        "drop" => {
            out.push_str("xx drop (");
            out.push_str(f.drop_reason_desc.unwrap_or("Unknown reason"));
            out.push_str(if ingress { ") to endpoint " } else { ") from endpoint " });
            endpoint(out);
            out.push_str(", ");
            ifx(out);
            out.push_str(", identity ");
            identity(out, f.src_identity);
            out.push_str("->");
            identity(out, f.dst_identity);
            out.push_str(": ");
        }
        "kernel-drop" => {
            // Freed by the kernel outside the datapath, with its own reason.
            out.push_str("xx kernel drop (");
            out.push_str(f.drop_reason_desc.unwrap_or("UNKNOWN"));
            out.push_str(if ingress { ") to endpoint " } else { ") from endpoint " });
            endpoint(out);
            out.push_str(", ");
            ifx(out);
            out.push_str(", identity ");
            identity(out, f.src_identity);
            out.push_str("->");
            identity(out, f.dst_identity);
            out.push_str(": ");
        }
        "policy-verdict" => {
            out.push_str("Policy verdict log: local EP ID ");
            endpoint(out);
            out.push_str(", remote ID ");
            identity(out, if ingress { f.src_identity } else { f.dst_identity });
            out.push_str(", proto ");
            out.push_str(n.format(f.packet.ip_proto.unwrap_or(0)));
            out.push_str(", ");
            out.push_str(f.direction);
            out.push_str(if f.verdict == "FORWARDED" { ", action allow, match " } else { ", action deny, match " });
            out.push_str(f.policy_match.unwrap_or("none"));
            if f.deny_overrode_allow {
                out.push_str(" (deny overrode allow)");
            }
            out.push_str(", ");
        }
        other => {
            out.push_str(other);
            out.push_str(" event, endpoint ");
            endpoint(out);
            out.push_str(": ");
        }
    }
    write_summary(out, &f.packet)
}

/// Every decoded layer, one per line (`-v`).
pub fn write_verbose(out: &mut impl Write, data: &[u8]) -> fmt::Result {
    let s = match LaxSlicedPacket::from_ethernet(data) {
        Ok(s) => s,
        Err(e) => return writeln!(out, "  (undecodable: {e})"),
    };
    if let Some(LinkSlice::Ethernet2(e)) = &s.link {
        let m = |b: [u8; 6]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
        writeln!(out, "  Ethernet  {} -> {} type {:#06x}", m(e.source()), m(e.destination()), e.ether_type().0)?;
    }
    if let Some(v) = &s.vlan {
        match v {
            etherparse::VlanSlice::SingleVlan(h) => writeln!(
                out,
                "  VLAN      id {} pcp {} type {:#06x}",
                h.vlan_identifier().value(),
                h.priority_code_point().value(),
                h.ether_type().0
            )?,
            etherparse::VlanSlice::DoubleVlan(d) => writeln!(
                out,
                "  VLAN      outer {} inner {} type {:#06x}",
                d.outer().vlan_identifier().value(),
                d.inner().vlan_identifier().value(),
                d.inner().ether_type().0
            )?,
        }
    }
    match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            writeln!(
                out,
                "  IPv4      {} -> {} ihl {} tos {:#04x} len {} id {} {}{}frag {} ttl {} proto {} csum {:#06x} options [{}]",
                h.source_addr(),
                h.destination_addr(),
                h.ihl(),
                (h.dcp().value() << 2) | h.ecn().value(),
                h.total_len(),
                h.identification(),
                if h.dont_fragment() { "DF " } else { "" },
                if h.more_fragments() { "MF " } else { "" },
                h.fragments_offset().value(),
                h.ttl(),
                h.protocol().0,
                h.header_checksum(),
                h.options().iter().map(|b| format!("{b:02x}")).collect::<String>()
            )?;
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            writeln!(
                out,
                "  IPv6      {} -> {} tc {} flow {} plen {} next {} hlim {}",
                h.source_addr(),
                h.destination_addr(),
                h.traffic_class(),
                h.flow_label().value(),
                h.payload_length(),
                h.next_header().0,
                h.hop_limit()
            )?;
            let exts = v6.extensions();
            if let Some(first) = exts.first_header() {
                let frag = if exts.is_fragmenting_payload() { ", fragment" } else { "" };
                writeln!(
                    out,
                    "  IPv6 ext  first {} ({} bytes{frag}) upper {}",
                    first.0,
                    exts.slice().len(),
                    v6.payload().ip_number.0
                )?;
            }
        }
        None => {
            if data.len() >= 42 && data[12..14] == [0x08, 0x06] {
                let a = &data[14..];
                writeln!(
                    out,
                    "  ARP       op {} sender {}.{}.{}.{} target {}.{}.{}.{}",
                    u16::from_be_bytes([a[6], a[7]]),
                    a[14],
                    a[15],
                    a[16],
                    a[17],
                    a[24],
                    a[25],
                    a[26],
                    a[27]
                )?;
            }
        }
    }
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let mut flags = String::new();
            for (bit, name) in TCP_FLAG_NAMES {
                if t.slice()[13] & bit != 0 {
                    flags.push_str(name);
                    flags.push(' ');
                }
            }
            let mut opts = Vec::new();
            for o in t.options_iterator() {
                use etherparse::TcpOptionElement as O;
                opts.push(match o {
                    Ok(O::Noop) => "nop".to_string(),
                    Ok(O::MaximumSegmentSize(m)) => format!("mss {m}"),
                    Ok(O::WindowScale(w)) => format!("wscale {w}"),
                    Ok(O::SelectiveAcknowledgementPermitted) => "sackOK".to_string(),
                    Ok(O::SelectiveAcknowledgement(first, _)) => format!("sack {}:{}", first.0, first.1),
                    Ok(O::Timestamp(a, b)) => format!("TS val {a} ecr {b}"),
                    Err(e) => format!("bad option ({e})"),
                });
            }
            writeln!(
                out,
                "  TCP       {} -> {} [{}] seq {} ack {} win {} urg {} options [{}]",
                t.source_port(),
                t.destination_port(),
                flags.trim_end(),
                t.sequence_number(),
                t.acknowledgment_number(),
                t.window_size(),
                t.urgent_pointer(),
                opts.join(", ")
            )?;
        }
        Some(TransportSlice::Udp(u)) => writeln!(
            out,
            "  UDP       {} -> {} len {} csum {:#06x}",
            u.source_port(),
            u.destination_port(),
            u.length(),
            u.checksum()
        )?,
        Some(TransportSlice::Icmpv4(i)) => {
            writeln!(out, "  ICMPv4    type {} code {} {:?}", i.type_u8(), i.code_u8(), i.icmp_type())?
        }
        Some(TransportSlice::Icmpv6(i)) => {
            writeln!(out, "  ICMPv6    type {} code {} {:?}", i.type_u8(), i.code_u8(), i.icmp_type())?
        }
        None => {}
    }
    Ok(())
}

/// `0000  45 00 …  E.…` lines, 16 bytes each (`--hex`).
pub fn hexdump(out: &mut impl Write, data: &[u8]) -> fmt::Result {
    for (i, chunk) in data.chunks(16).enumerate() {
        write!(out, "  {:04x}  ", i * 16)?;
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => write!(out, "{b:02x} ")?,
                None => out.write_str("   ")?,
            }
        }
        out.write_char(' ')?;
        for &b in chunk {
            out.write_char(if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' })?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p: &Packet) -> String {
        let mut s = String::new();
        write_hubble_summary(&mut s, p);
        s
    }

    /// Cilium's summaries, as its L3/L4 parser writes them from the layers
    /// gopacket decoded: TCP flags in its order, ICMP types and codes in
    /// gopacket's names, the last layer's name otherwise.
    #[test]
    fn summaries_as_cilium_writes_them() {
        let v4 = |proto| Packet {
            src_ip: Some([10, 0, 0, 1].into()),
            dst_ip: Some([10, 0, 0, 2].into()),
            ip_proto: Some(proto),
            ..Packet::default()
        };
        let v6 = |proto| Packet {
            src_ip: Some(IpAddr::from([0xfd; 16])),
            dst_ip: Some(IpAddr::from([0xfe; 16])),
            ip_proto: Some(proto),
            ..Packet::default()
        };
        let tcp = |flags| Packet { src_port: Some(1), dst_port: Some(2), tcp_flags: Some(flags), ..v4(6) };
        let icmp4 = |t, c| Packet { icmp_type: Some(t), icmp_code: Some(c), ..v4(1) };
        let icmp6 = |t, c| Packet { icmp_type: Some(t), icmp_code: Some(c), ..v6(58) };
        let cases = [
            (tcp(0x02), "TCP Flags: SYN"),
            (tcp(0x12), "TCP Flags: SYN, ACK"),
            (tcp(0x11), "TCP Flags: ACK, FIN"),
            (tcp(0x18), "TCP Flags: ACK, PSH"),
            (tcp(0xff), "TCP Flags: SYN, ACK, RST, FIN, PSH, URG, ECE, CWR"),
            (tcp(0x00), "TCP Flags: "),
            (Packet { src_port: Some(53), dst_port: Some(4000), ..v4(17) }, "UDP"),
            (Packet { src_port: Some(53), dst_port: Some(4000), ..v6(17) }, "UDP"),
            (icmp4(8, 0), "ICMPv4 EchoRequest"),
            (icmp4(0, 0), "ICMPv4 EchoReply"),
            (icmp4(0, 3), "ICMPv4 EchoReply(Code: 3)"),
            (icmp4(3, 3), "ICMPv4 DestinationUnreachable(Port)"),
            (icmp4(3, 4), "ICMPv4 DestinationUnreachable(FragmentationNeeded)"),
            (icmp4(3, 99), "ICMPv4 DestinationUnreachable(Code: 99)"),
            (icmp4(5, 2), "ICMPv4 Redirect(TOS+Net)"),
            (icmp4(11, 0), "ICMPv4 TimeExceeded(TTLExceeded)"),
            (icmp4(42, 7), "ICMPv4 42(7)"),
            (icmp6(128, 0), "ICMPv6 EchoRequest"),
            (icmp6(129, 0), "ICMPv6 EchoReply"),
            (icmp6(1, 4), "ICMPv6 DestinationUnreachable(PortUnreachable)"),
            (icmp6(2, 0), "ICMPv6 PacketTooBig"),
            (icmp6(3, 0), "ICMPv6 TimeExceeded(HopLimitExceeded)"),
            (icmp6(4, 1), "ICMPv6 ParameterProblem(UnrecognizedNextHeader)"),
            (icmp6(135, 0), "ICMPv6 NeighborSolicitation"),
            (icmp6(136, 0), "ICMPv6 NeighborAdvertisement"),
            (icmp6(143, 0), "ICMPv6 143(0)"),
            // Another protocol, a fragment, a cut L4 header: the IP layer.
            (v4(47), "IPv4"),
            (v4(6), "IPv4"),
            (v6(17), "IPv6"),
            (Packet { ether_type: Some(0x0806), ..Packet::default() }, "Ethernet"),
            (Packet::default(), ""),
        ];
        for (p, want) in cases {
            assert_eq!(summary(&p), want, "{p:?}");
        }
        // From bytes, through the decoder the server uses.
        use etherparse::PacketBuilder;
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1024)
            .ack(7)
            .fin()
            .write(&mut f, &[])
            .unwrap();
        assert_eq!(summary(&super::super::decode_packet(&f)), "TCP Flags: ACK, FIN");
    }
}
