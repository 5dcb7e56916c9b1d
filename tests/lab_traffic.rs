//! Real packets between lab endpoints: conntrack entries with the right
//! counts, the events the datapath emits, and policy drops.

use std::net::IpAddr;
use std::time::Duration;

use dpdbg::abi::{self, PolicyKey, Reason};
use dpdbg::datapath::{Settings, Transport};
use dpdbg::events::{Event, EventReader};
use dpdbg::lab::{Lab, LabOptions};

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
        assert_eq!(e.lifetime_s, 60);
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
    assert_eq!(eg.lifetime_s, 10, "closed connections get the close timeout");

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

#[test]
fn hub_fans_out_to_every_subscriber() {
    use dpdbg::events::Hub;
    let lab = lab(Transport::Ringbuf);
    let b = lab.endpoint(1).clone();
    let hub = Hub::start(EventReader::open(lab.bpffs(), Transport::Ringbuf).unwrap());
    let one = hub.subscribe(64);
    let two = hub.subscribe(64);
    // While the hub holds the reader, nobody else can take the events.
    assert!(matches!(EventReader::open(lab.bpffs(), Transport::Ringbuf), Err(dpdbg::Error::EventsBusy { .. })));
    assert!(lab.ping(0, IpAddr::V4(b.ipv4)).unwrap());
    let take = |s: &dpdbg::events::Subscription| -> Vec<u64> {
        (0..2).map(|_| s.events.recv_timeout(Duration::from_secs(3)).expect("event").hdr.timestamp_ns).collect()
    };
    let (a1, a2) = (take(&one), take(&two));
    assert_eq!(a1, a2, "both subscribers see the same events");
    drop(two);
    assert!(lab.ping(0, IpAddr::V4(b.ipv4)).unwrap());
    assert_eq!(take(&one).len(), 2, "a gone subscriber does not stop the others");
    assert_eq!(one.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
    let reader = hub.stop().expect("the reader comes back");
    drop(reader);
    EventReader::open(lab.bpffs(), Transport::Ringbuf).expect("the lock is released with the reader");
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
