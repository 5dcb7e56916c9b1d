//! Real packets between lab endpoints: conntrack entries with the right
//! counts, the events the datapath emits, and policy drops.

use std::net::IpAddr;
use std::time::Duration;

use dpdbg::abi::{self, PolicyKey, Reason};
use dpdbg::datapath::{Settings, Transport};
use dpdbg::events::{Event, EventReader};
use dpdbg::lab::{Lab, LabOptions, in_netns};

fn lab(transport: Transport) -> Lab {
    Lab::up(&LabOptions { settings: Settings { transport, ..Settings::default() }, ..LabOptions::default() }).unwrap()
}

fn events(r: &mut EventReader) -> Vec<Event> {
    r.collect_for(Duration::from_millis(300), Duration::from_secs(5)).unwrap()
}

/// The bytes of one `ping -c 1` packet at tc: Ethernet + IPv4 + ICMP with 56 data bytes.
const PING4_LEN: u64 = 14 + 20 + 8 + 56;
const PING6_LEN: u64 = 14 + 40 + 8 + 56;

fn ping_creates_ct_and_traces(transport: Transport) {
    let lab = lab(transport);
    let (a, b) = (lab.endpoint(0).clone(), lab.endpoint(1).clone());
    let mut reader = EventReader::open(lab.bpffs(), transport).unwrap();
    assert!(lab.ping(0, IpAddr::V4(b.ipv4)).unwrap(), "ping ep1 -> ep2");

    let ct = lab.maps().unwrap().ct4_list().unwrap();
    let icmp: Vec<_> =
        ct.iter().filter(|(k, _)| k.proto == 1 && k.saddr == a.ipv4.octets() && k.daddr == b.ipv4.octets()).collect();
    assert_eq!(icmp.len(), 2, "one entry per hook the request crossed: {icmp:?}");
    for (k, e) in &icmp {
        assert_ne!(k.sport, 0, "echo id is the source port");
        assert_eq!(k.dport, 0);
        assert_eq!((e.packets_fwd, e.bytes_fwd), (1, PING4_LEN), "request counted on {k:?}");
        assert_eq!((e.packets_rev, e.bytes_rev), (1, PING4_LEN), "reply counted on {k:?}");
        assert_eq!(e.src_identity, a.identity);
        assert_eq!(e.lifetime_s, abi::CT_LIFETIME_NONTCP);
        assert!(e.flags & abi::CT_F_REPLY_SEEN != 0);
    }
    let dirs: Vec<u8> = icmp.iter().map(|(k, _)| k.direction).collect();
    assert!(dirs.contains(&abi::DIR_EGRESS) && dirs.contains(&abi::DIR_INGRESS));

    // Aggregation "medium": a trace for the new connection at each hook, none for the reply.
    let ev = events(&mut reader);
    let kinds: Vec<_> = ev.iter().map(|e| (e.hdr.r#type, e.hdr.subtype, e.hdr.endpoint_id, e.hdr.ct_state)).collect();
    assert_eq!(
        kinds,
        vec![
            (abi::EVENT_TRACE, abi::TRACE_FROM_ENDPOINT, a.endpoint_id, abi::CT_NEW),
            (abi::EVENT_TRACE, abi::TRACE_TO_ENDPOINT, b.endpoint_id, abi::CT_NEW),
        ],
        "events: {ev:?}"
    );
    for e in &ev {
        assert_eq!((e.hdr.src_identity, e.hdr.dst_identity), (a.identity, b.identity));
        assert_eq!(e.hdr.verdict, abi::VERDICT_FORWARDED);
        assert_eq!(e.hdr.orig_len as u64, PING4_LEN);
        assert_eq!(e.hdr.cap_len as u64, PING4_LEN, "snaplen 128 captures the whole packet");
        assert_eq!(&e.data[26..30], &a.ipv4.octets(), "captured bytes are the packet (IPv4 source)");
        assert_eq!(&e.data[30..34], &b.ipv4.octets());
    }
    assert_eq!(reader.lost, 0);

    // IPv6 takes the same path through ct6.
    assert!(lab.ping(0, IpAddr::V6(b.ipv6)).unwrap(), "ping6 ep1 -> ep2");
    let ct6 = lab.maps().unwrap().ct6_list().unwrap();
    let icmp6: Vec<_> = ct6.iter().filter(|(k, _)| k.proto == 58 && k.saddr == a.ipv6.octets()).collect();
    assert_eq!(icmp6.len(), 2, "{icmp6:?}");
    assert!(icmp6.iter().all(|(_, e)| e.packets_fwd == 1 && e.packets_rev == 1 && e.bytes_fwd == PING6_LEN));
    let ev = events(&mut reader);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().all(|e| e.hdr.family == abi::FAMILY_IPV6 && e.hdr.proto == 58));

    let m = lab.maps().unwrap().metrics().unwrap();
    let fwd: u64 = m.iter().filter(|m| m.reason == 0).map(|m| m.packets).sum();
    assert!(fwd >= 8, "4 packets x 2 hooks forwarded at least: {m:?}");
    assert!(!m.iter().any(|m| Reason(m.reason).is_drop()), "no drops: {m:?}");
}

#[test]
fn ping_ringbuf() {
    ping_creates_ct_and_traces(Transport::Ringbuf);
}

#[test]
fn ping_perf() {
    ping_creates_ct_and_traces(Transport::Perf);
}

#[test]
fn tcp_connection_tracks_flags_and_counts() {
    let lab = lab(Transport::Ringbuf);
    let (a, b) = (lab.endpoint(0).clone(), lab.endpoint(1).clone());
    let mut reader = EventReader::open(lab.bpffs(), Transport::Ringbuf).unwrap();
    let echoed = lab.tcp(0, 1, IpAddr::V4(b.ipv4), 8080).unwrap().expect("tcp exchange");
    assert_eq!(echoed, b"hello dpdbg\n");
    // Let the closing handshake finish.
    std::thread::sleep(Duration::from_millis(200));

    let ct = lab.maps().unwrap().ct4_list().unwrap();
    let tcp: Vec<_> =
        ct.iter().filter(|(k, _)| k.proto == 6 && k.dport == 8080 && k.saddr == a.ipv4.octets()).collect();
    assert_eq!(tcp.len(), 2, "{tcp:?}");
    let (eg, ing) = if tcp[0].0.direction == abi::DIR_EGRESS { (tcp[0].1, tcp[1].1) } else { (tcp[1].1, tcp[0].1) };
    // Both hooks saw exactly the same packets.
    assert_eq!(
        (eg.packets_fwd, eg.bytes_fwd, eg.packets_rev, eg.bytes_rev),
        (ing.packets_fwd, ing.bytes_fwd, ing.packets_rev, ing.bytes_rev)
    );
    assert!(eg.packets_fwd >= 4 && eg.packets_rev >= 3, "{eg:?}");
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    assert_eq!(eg.tcp_flags_fwd & (SYN | ACK | FIN), SYN | ACK | FIN, "client flags {:#x}", eg.tcp_flags_fwd);
    assert_eq!(eg.tcp_flags_rev & (SYN | ACK | FIN), SYN | ACK | FIN, "server flags {:#x}", eg.tcp_flags_rev);
    let both = abi::CT_F_CLOSING_FWD | abi::CT_F_CLOSING_REV | abi::CT_F_REPLY_SEEN | abi::CT_F_SEEN_NON_SYN;
    assert_eq!(eg.flags & both, both, "flags {:#x}", eg.flags);
    assert_eq!(eg.lifetime_s, abi::CT_LIFETIME_CLOSE, "closed connections get the close timeout");

    let ev = events(&mut reader);
    assert!(ev.len() >= 4, "{ev:?}");
    // The first two are the SYN at each hook, as a new connection.
    assert_eq!((ev[0].hdr.subtype, ev[0].hdr.ct_state), (abi::TRACE_FROM_ENDPOINT, abi::CT_NEW));
    assert_eq!((ev[1].hdr.subtype, ev[1].hdr.ct_state), (abi::TRACE_TO_ENDPOINT, abi::CT_NEW));
    assert!(ev.iter().all(|e| e.hdr.r#type == abi::EVENT_TRACE && e.hdr.verdict == abi::VERDICT_FORWARDED));
    assert!(ev.iter().any(|e| e.hdr.ct_state == abi::CT_REPLY), "the SYN-ACK is traced as a reply");
    // With medium aggregation there are fewer events than packets.
    let packets = 2 * (eg.packets_fwd + eg.packets_rev);
    assert!((ev.len() as u64) < packets, "{} events for {packets} packets", ev.len());
}

#[test]
fn policy_denies_and_allows() {
    let lab = lab(Transport::Ringbuf);
    let (a, b) = (lab.endpoint(0).clone(), lab.endpoint(1).clone());
    let maps = lab.maps().unwrap();
    lab.set_enforcement(1, true, false).unwrap();
    let rule = |identity, dport, proto, action| {
        maps.policy_add(
            PolicyKey { endpoint_id: b.endpoint_id, identity, dport, proto, direction: abi::DIR_INGRESS },
            action,
        )
        .unwrap()
    };
    rule(a.identity, 5353, 17, abi::POLICY_DENY);
    rule(a.identity, 0, 1, abi::POLICY_ALLOW);
    let mut reader = EventReader::open(lab.bpffs(), Transport::Ringbuf).unwrap();

    // Denied by an explicit rule.
    let r = lab.udp(0, 1, IpAddr::V4(b.ipv4), 5353).unwrap();
    assert!(r.is_err(), "a denied request gets no answer: {r:?}");
    let ev = events(&mut reader);
    let verdict = ev.iter().find(|e| e.hdr.r#type == abi::EVENT_POLICY_VERDICT).expect("a policy verdict event");
    assert_eq!((verdict.hdr.subtype, verdict.hdr.verdict), (abi::MATCH_L3_L4, abi::VERDICT_DROPPED));
    assert_eq!(verdict.hdr.endpoint_id, b.endpoint_id);
    let drop = ev.iter().find(|e| e.hdr.r#type == abi::EVENT_DROP).expect("a drop event");
    assert_eq!(drop.hdr.subtype, Reason::POLICY_DENYLIST.0);
    assert_eq!(Reason(drop.hdr.subtype).text(), "Policy denied by denylist");
    assert_eq!((drop.hdr.src_identity, drop.hdr.dst_identity), (a.identity, b.identity));
    assert_eq!(drop.hdr.direction, abi::DIR_INGRESS);

    // Enforcement on and no rule for TCP: dropped by default with "Policy denied".
    let r = lab.tcp(0, 1, IpAddr::V4(b.ipv4), 8080).unwrap();
    assert!(r.is_err(), "{r:?}");
    let ev = events(&mut reader);
    let drops: Vec<_> = ev.iter().filter(|e| e.hdr.r#type == abi::EVENT_DROP).collect();
    assert!(!drops.is_empty());
    assert!(
        drops
            .iter()
            .all(|d| d.hdr.subtype == Reason::POLICY_DENIED.0 && Reason(d.hdr.subtype).text() == "Policy denied")
    );
    assert!(ev.iter().any(|e| e.hdr.r#type == abi::EVENT_POLICY_VERDICT && e.hdr.subtype == abi::MATCH_NONE));

    // ICMP is allowed by its L3-L4 rule; the verdict says so.
    assert!(lab.ping(0, IpAddr::V4(b.ipv4)).unwrap());
    let ev = events(&mut reader);
    let v = ev.iter().find(|e| e.hdr.r#type == abi::EVENT_POLICY_VERDICT).expect("verdict for ping");
    assert_eq!((v.hdr.subtype, v.hdr.verdict), (abi::MATCH_L3_L4, abi::VERDICT_FORWARDED));

    let m = maps.metrics().unwrap();
    let count = |reason: Reason| {
        m.iter().filter(|x| x.reason == reason.0 && x.direction == "ingress").map(|x| x.packets).sum::<u64>()
    };
    assert_eq!(count(Reason::POLICY_DENYLIST), 1, "{m:?}");
    assert!(count(Reason::POLICY_DENIED) >= 1, "{m:?}");
    let rules = maps.policy_list().unwrap();
    let deny = rules.iter().find(|(k, _)| k.proto == 17).unwrap();
    assert_eq!(deny.1.packets, 1, "the deny rule counted its packet");
    let allow = rules.iter().find(|(k, _)| k.proto == 1).unwrap();
    assert_eq!(allow.1.packets, 1, "the allow rule counted the first packet of the ping");

    // Deny wins over allow for the same key: an allow is refused and does not replace it.
    let key = PolicyKey {
        endpoint_id: b.endpoint_id,
        identity: a.identity,
        dport: 5353,
        proto: 17,
        direction: abi::DIR_INGRESS,
    };
    assert!(maps.policy_add(key, abi::POLICY_ALLOW).is_err());
    let rules = maps.policy_list().unwrap();
    assert_eq!(rules.iter().find(|(k, _)| k.proto == 17).unwrap().1.action, abi::POLICY_DENY);
}

/// (event type, subtype, endpoint, tcp flags of the captured packet) for a compact comparison.
fn shape(e: &Event) -> (u8, u8, u32, u8) {
    let p = dpdbg::flow::decode_packet(&e.data);
    (e.hdr.r#type, e.hdr.subtype, e.hdr.endpoint_id, p.tcp_flags.unwrap_or(0))
}

fn exact_events(transport: Transport) {
    let lab = lab(transport);
    let (a, b) = (lab.endpoint(0).clone(), lab.endpoint(1).clone());
    lab.set_enforcement(1, true, false).unwrap();
    let maps = lab.maps().unwrap();
    let allow = |proto, dport| {
        let key =
            PolicyKey { endpoint_id: b.endpoint_id, identity: a.identity, dport, proto, direction: abi::DIR_INGRESS };
        maps.policy_add(key, abi::POLICY_ALLOW).unwrap();
    };
    allow(1, 0);
    allow(6, 8080);
    let mut reader = EventReader::open(lab.bpffs(), transport).unwrap();
    let (ea, eb) = (a.endpoint_id, b.endpoint_id);
    const FROM: u8 = abi::TRACE_FROM_ENDPOINT;
    const TO: u8 = abi::TRACE_TO_ENDPOINT;
    const T: u8 = abi::EVENT_TRACE;
    const V: u8 = abi::EVENT_POLICY_VERDICT;
    const D: u8 = abi::EVENT_DROP;

    assert!(lab.ping(0, IpAddr::V4(b.ipv4)).unwrap());
    let got: Vec<_> = events(&mut reader).iter().map(shape).collect();
    assert_eq!(got, vec![(T, FROM, ea, 0), (V, abi::MATCH_L3_L4, eb, 0), (T, TO, eb, 0)], "ping");

    let r = lab.udp(0, 1, IpAddr::V4(b.ipv4), 5353).unwrap();
    assert!(r.is_err());
    let got: Vec<_> = events(&mut reader).iter().map(shape).collect();
    assert_eq!(
        got,
        vec![(T, FROM, ea, 0), (V, abi::MATCH_NONE, eb, 0), (D, Reason::POLICY_DENIED.0, eb, 0)],
        "denied udp"
    );

    lab.tcp(0, 1, IpAddr::V4(b.ipv4), 8080).unwrap().expect("tcp allowed");
    std::thread::sleep(Duration::from_millis(200));
    let got: Vec<_> = events(&mut reader).iter().map(shape).collect();
    // Aggregation traces a packet when it shows flags its direction had not
    // shown before: SYN, SYN-ACK, ACK, client data (PSH), server data, and each FIN.
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;
    const FIN: u8 = 0x01;
    let pair = |from_a: bool, flags: u8| {
        if from_a { [(T, FROM, ea, flags), (T, TO, eb, flags)] } else { [(T, FROM, eb, flags), (T, TO, ea, flags)] }
    };
    let mut want = vec![(T, FROM, ea, SYN), (V, abi::MATCH_L3_L4, eb, SYN), (T, TO, eb, SYN)];
    for (from_a, flags) in
        [(false, SYN | ACK), (true, ACK), (true, PSH | ACK), (false, PSH | ACK), (false, FIN | ACK), (true, FIN | ACK)]
    {
        want.extend(pair(from_a, flags));
    }
    assert_eq!(got, want, "tcp connection");
    assert_eq!(reader.lost, 0);
}

#[test]
fn exact_events_ringbuf() {
    exact_events(Transport::Ringbuf);
}

#[test]
fn exact_events_perf() {
    exact_events(Transport::Perf);
}

/// A raw IP socket of `proto` inside `netns`: sends `payload` to `dst` (the
/// kernel writes the IP header), or waits up to `wait` for one packet.
fn raw_ip(netns: &str, dst: IpAddr, proto: i32, payload: Option<Vec<u8>>, wait: Duration) -> Option<Vec<u8>> {
    in_netns(netns, move || {
        let family = if dst.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        // SAFETY: plain socket calls on an fd this closure owns and closes.
        unsafe {
            let fd = libc::socket(family, libc::SOCK_RAW, proto);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let tv = libc::timeval { tv_sec: wait.as_secs() as i64, tv_usec: wait.subsec_micros() as i64 };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            let out = match payload {
                Some(p) => {
                    let r = match dst {
                        IpAddr::V4(a) => {
                            let mut sa: libc::sockaddr_in = std::mem::zeroed();
                            sa.sin_family = libc::AF_INET as u16;
                            sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                            libc::sendto(
                                fd,
                                p.as_ptr().cast(),
                                p.len(),
                                0,
                                (&sa as *const libc::sockaddr_in).cast(),
                                16,
                            )
                        }
                        IpAddr::V6(a) => {
                            let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                            sa.sin6_family = libc::AF_INET6 as u16;
                            sa.sin6_addr.s6_addr = a.octets();
                            libc::sendto(
                                fd,
                                p.as_ptr().cast(),
                                p.len(),
                                0,
                                (&sa as *const libc::sockaddr_in6).cast(),
                                28,
                            )
                        }
                    };
                    assert!(r >= 0, "raw sendto: {}", std::io::Error::last_os_error());
                    None
                }
                None => {
                    let mut buf = vec![0u8; 2048];
                    let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                    if n > 0 {
                        buf.truncate(n as usize);
                        Some(buf)
                    } else {
                        None
                    }
                }
            };
            libc::close(fd);
            out
        }
    })
    .unwrap()
}

/// Sends `payload` as protocol `proto` from endpoint `from` to `dst` while a
/// raw socket of the receiving endpoint listens; true when it arrived.
fn raw_delivered(lab: &Lab, from: usize, to: usize, dst: IpAddr, proto: i32, payload: &[u8]) -> bool {
    let rx_ns = lab.endpoint(to).netns.clone();
    let rx = std::thread::spawn(move || raw_ip(&rx_ns, dst, proto, None, Duration::from_millis(1500)));
    std::thread::sleep(Duration::from_millis(200));
    raw_ip(&lab.endpoint(from).netns, dst, proto, Some(payload.to_vec()), Duration::ZERO);
    rx.join().unwrap().is_some()
}

/// IPv6 destination-options headers (8 bytes each), the last pointing to UDP,
/// then a UDP header to `port` and a little data.
fn dstopts_chain(n: usize, port: u16) -> Vec<u8> {
    let mut p = Vec::new();
    for i in 0..n {
        let next = if i + 1 == n { 17 } else { 60 };
        p.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    p.extend_from_slice(&4000u16.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&12u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, b'd', b'p', b'd', b'b']);
    p
}

/// An enforced endpoint with no rules receives nothing, whatever the packet;
/// with enforcement off the same packets arrive (so the test can tell).
#[test]
fn enforced_endpoint_without_rules_lets_nothing_through() {
    let lab = lab(Transport::Ringbuf);
    let b = lab.endpoint(1).clone();
    let (v4, v6) = (IpAddr::V4(b.ipv4), IpAddr::V6(b.ipv6));
    let gre = [0u8, 0, 0x08, 0, 0x45, 0, 0, 20];
    let sctp_like = [0x13u8, 0x88, 0x13, 0x89, 0, 0, 0, 0, 0, 0, 0, 0];

    // Control: no enforcement, everything arrives.
    assert!(lab.ping(0, v4).unwrap() && lab.ping(0, v6).unwrap());
    assert!(lab.tcp(0, 1, v4, 8080).unwrap().is_ok());
    assert!(lab.udp(0, 1, v6, 5353).unwrap().is_ok());
    assert!(raw_delivered(&lab, 0, 1, v4, 47, &gre), "GRE arrives without enforcement");
    assert!(raw_delivered(&lab, 0, 1, v6, 60, &dstopts_chain(3, 9)), "a short extension chain arrives");
    let maps = lab.maps().unwrap();
    dpdbg::maps::ct::flush(lab.bpffs()).unwrap();

    lab.set_enforcement(1, true, true).unwrap();
    assert!(!lab.ping(0, v4).unwrap(), "ICMP");
    assert!(!lab.ping(0, v6).unwrap(), "ICMPv6");
    assert!(lab.tcp(0, 1, v4, 8081).unwrap().is_err(), "TCP");
    assert!(lab.udp(0, 1, v6, 5354).unwrap().is_err(), "UDP");
    assert!(!raw_delivered(&lab, 0, 1, v4, 47, &gre), "GRE (protocol 47)");
    assert!(!raw_delivered(&lab, 0, 1, v4, 132, &sctp_like), "protocol 132");
    assert!(!raw_delivered(&lab, 0, 1, v6, 60, &dstopts_chain(3, 9)), "UDP behind 3 destination options");
    assert!(!raw_delivered(&lab, 0, 1, v6, 60, &dstopts_chain(9, 9)), "a chain of 9 destination options");
    // What the enforced endpoint sends is refused too.
    assert!(!raw_delivered(&lab, 1, 0, IpAddr::V4(lab.endpoint(0).ipv4), 47, &gre), "GRE out of it");

    let m = maps.metrics().unwrap();
    let dropped = |r: Reason| m.iter().filter(|x| x.reason == r.0).map(|x| x.packets).sum::<u64>();
    assert!(dropped(Reason::POLICY_DENIED) >= 7, "{m:?}");
    assert!(dropped(Reason::INVALID_EXTHDR) >= 1, "{m:?}");
    // The unenforced sender tracks what it sent; the enforced endpoint tracked nothing.
    let ct = maps.ct4_list().unwrap();
    let at_b = |k: &abi::Ct4Key| {
        (k.direction == abi::DIR_INGRESS && k.daddr == b.ipv4.octets())
            || (k.direction == abi::DIR_EGRESS && k.saddr == b.ipv4.octets())
    };
    assert!(!ct.iter().any(|(k, _)| at_b(k)), "nothing denied was tracked: {ct:?}");
}

fn ingress_rule(maps: &dpdbg::maps::Maps, ep: u32, identity: u32, dport: u16, proto: u8, action: u8) {
    let key = PolicyKey { endpoint_id: ep, identity, dport, proto, direction: abi::DIR_INGRESS };
    maps.policy_add(key, action).unwrap();
}

/// Cilium's deny table with real connections.
#[test]
fn deny_precedence_holds_for_real_connections() {
    let lab = lab(Transport::Ringbuf);
    let (a, b) = (lab.endpoint(0).clone(), lab.endpoint(1).clone());
    let dst = IpAddr::V4(b.ipv4);
    let maps = lab.maps().unwrap();
    lab.set_enforcement(1, true, false).unwrap();

    // An L4 allow on 80/TCP plus an L3 deny for the client.
    ingress_rule(&maps, b.endpoint_id, abi::IDENTITY_ANY, 80, 6, abi::POLICY_ALLOW);
    ingress_rule(&maps, b.endpoint_id, a.identity, 0, 0, abi::POLICY_DENY);
    assert!(lab.tcp(0, 1, dst, 80).unwrap().is_err(), "port 80 denied");
    assert!(lab.tcp(0, 1, dst, 81).unwrap().is_err(), "port 81 denied");
    assert!(!lab.ping(0, dst).unwrap(), "ping denied");

    // Only an L4 deny on 80, and an L3 allow for the client.
    for (k, _) in maps.policy_list().unwrap() {
        maps.policy_delete(k).unwrap();
    }
    ingress_rule(&maps, b.endpoint_id, abi::IDENTITY_ANY, 80, 6, abi::POLICY_DENY);
    ingress_rule(&maps, b.endpoint_id, a.identity, 0, 0, abi::POLICY_ALLOW);
    assert!(lab.tcp(0, 1, dst, 80).unwrap().is_err(), "port 80 denied");
    assert_eq!(lab.tcp(0, 1, dst, 81).unwrap().unwrap(), b"hello dpdbg\n", "port 81 allowed");
    assert!(lab.ping(0, dst).unwrap(), "ping allowed by the L3 allow");
}

/// A connection closed with a reset, then the same 4-tuple opened again: the
/// new SYN goes through policy, so a rule removed in between stops it.
#[test]
fn closed_tuple_reused_goes_through_policy() {
    use std::net::{SocketAddr, TcpListener};
    let lab = lab(Transport::Ringbuf);
    let b = lab.endpoint(1).clone();
    let maps = lab.maps().unwrap();
    lab.set_enforcement(1, true, false).unwrap();
    ingress_rule(&maps, b.endpoint_id, abi::IDENTITY_ANY, 7070, 6, abi::POLICY_ALLOW);
    let server_addr = SocketAddr::new(IpAddr::V4(b.ipv4), 7070);
    let server = in_netns(&b.netns, move || TcpListener::bind(server_addr).unwrap()).unwrap();
    server.set_nonblocking(true).unwrap();

    // Connects from a fixed source port and resets (SO_LINGER 0): no TIME_WAIT, the entry is CLOSED.
    let connect = |ns: String| {
        in_netns(&ns, move || -> std::io::Result<()> {
            // SAFETY: socket setup on an fd owned by the TcpStream made from it.
            let fd = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let one: i32 = 1;
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const i32).cast(), 4);
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_port = 41000u16.to_be();
                if libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), 16) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&tv as *const libc::timeval).cast(), 16);
                let mut da: libc::sockaddr_in = std::mem::zeroed();
                da.sin_family = libc::AF_INET as u16;
                da.sin_port = 7070u16.to_be();
                da.sin_addr.s_addr = u32::from_ne_bytes(match server_addr.ip() {
                    IpAddr::V4(a) => a.octets(),
                    _ => unreachable!(),
                });
                let r = libc::connect(fd, (&da as *const libc::sockaddr_in).cast(), 16);
                let err = std::io::Error::last_os_error();
                let linger = libc::linger { l_onoff: 1, l_linger: 0 };
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&linger as *const libc::linger).cast(), 8);
                libc::close(fd);
                if r != 0 {
                    return Err(err);
                }
                fd
            };
            let _ = fd;
            Ok(())
        })
        .unwrap()
    };
    let ns = lab.endpoint(0).netns.clone();
    connect(ns.clone()).expect("first connection");
    std::thread::sleep(Duration::from_millis(100));
    let _ = server.accept();
    let ct = maps.ct4_list().unwrap();
    let entry = ct.iter().find(|(k, _)| k.sport == 41000 && k.direction == abi::DIR_INGRESS).expect("tracked");
    assert_eq!(dpdbg::maps::ct::state(6, &entry.1), "CLOSED", "{entry:?}");

    // Same tuple, still within the closed entry's lifetime, but the rule is gone.
    let key = PolicyKey { endpoint_id: b.endpoint_id, identity: 0, dport: 7070, proto: 6, direction: abi::DIR_INGRESS };
    maps.policy_delete(key).unwrap();
    let second = connect(ns.clone());
    assert!(second.is_err(), "the reused tuple is a new connection and policy refuses it");
    // And with the rule back it connects again.
    maps.policy_add(key, abi::POLICY_ALLOW).unwrap();
    connect(ns).expect("third connection");
}

/// An ICMP port unreachable answering a tracked UDP flow passes into an
/// endpoint that enforces ingress with no rule for ICMP: it is related.
#[test]
fn icmp_error_is_related_under_enforcement() {
    use std::net::{SocketAddr, UdpSocket};
    let lab = lab(Transport::Ringbuf);
    let (a, b) = (lab.endpoint(0).clone(), lab.endpoint(1).clone());
    let maps = lab.maps().unwrap();
    lab.set_enforcement(0, true, true).unwrap();
    lab.set_enforcement(1, true, true).unwrap();
    let key = PolicyKey {
        endpoint_id: a.endpoint_id,
        identity: b.identity,
        dport: 9999,
        proto: 17,
        direction: abi::DIR_EGRESS,
    };
    maps.policy_add(key, abi::POLICY_ALLOW).unwrap();
    ingress_rule(&maps, b.endpoint_id, a.identity, 9999, 17, abi::POLICY_ALLOW);
    let mut reader = EventReader::open(lab.bpffs(), Transport::Ringbuf).unwrap();

    // Nothing listens on 9999: the receiver answers with port unreachable.
    let dst = SocketAddr::new(IpAddr::V4(b.ipv4), 9999);
    let r = in_netns(&a.netns, move || -> std::io::Result<usize> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(dst)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send(b"anyone?")?;
        let mut buf = [0u8; 16];
        s.recv(&mut buf)
    })
    .unwrap();
    let err = r.expect_err("no answer but an error");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "the ICMP error reached the sender: {err}");
    let ev = events(&mut reader);
    let related: Vec<_> = ev.iter().filter(|e| e.hdr.ct_state == abi::CT_RELATED).collect();
    assert_eq!(related.len(), 2, "related at the receiver's egress and the sender's ingress: {ev:?}");
    assert!(related.iter().all(|e| e.hdr.proto == 1 && e.hdr.verdict == abi::VERDICT_FORWARDED));
    assert!(ev.iter().all(|e| e.hdr.r#type != abi::EVENT_DROP), "{ev:?}");
}
