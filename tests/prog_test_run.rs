//! Every verdict path of the datapath, on packets built with etherparse and
//! run through the loaded programs with BPF_PROG_TEST_RUN.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use common::TestBpffs;
use dpdbg::abi::{self, EndpointInfo, PolicyKey, Reason};
use dpdbg::datapath::{self, Pins, Settings, Transport};
use dpdbg::events::{Event, EventReader};
use dpdbg::maps::{Maps, PolicyAdd, ct};
use etherparse::PacketBuilder;

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
/// BPF_PROG_TEST_RUN hands tc programs an skb on the loopback device.
const LO: u32 = 1;

const EP_ID: u32 = 7;
const EP_IDENTITY: u32 = 3000;
const PEER_IDENTITY: u32 = 5000;
const EP4: [u8; 4] = [192, 0, 2, 10];
const PEER4: [u8; 4] = [203, 0, 113, 20];
const EP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
const PEER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x20];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

struct Dp {
    fs: TestBpffs,
    from: SchedClassifier,
    to: SchedClassifier,
    maps: Maps,
    events: EventReader,
}

impl Dp {
    fn new(enforce: u16) -> Dp {
        let fs = TestBpffs::new();
        datapath::load(fs.path(), &Settings::default()).unwrap();
        let pins = Pins::new(fs.path());
        let from = SchedClassifier::from_pin(pins.prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
        let to = SchedClassifier::from_pin(pins.prog(datapath::PROG_TO_ENDPOINT)).unwrap();
        let maps = Maps::open(fs.path()).unwrap();
        let info = EndpointInfo { endpoint_id: EP_ID, identity: EP_IDENTITY, ifindex: LO, mac: MAC_A, flags: enforce };
        maps.endpoint_upsert(IpAddr::from(EP4), info).unwrap();
        maps.endpoint_upsert(IpAddr::from(EP6), info).unwrap();
        maps.ipcache_upsert(IpAddr::from([203, 0, 113, 0]), 24, PEER_IDENTITY).unwrap();
        maps.ipcache_upsert(
            IpAddr::from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            64,
            PEER_IDENTITY,
        )
        .unwrap();
        let events = EventReader::open(fs.path(), Transport::Ringbuf).unwrap();
        Dp { fs, from, to, maps, events }
    }

    fn run(prog: &SchedClassifier, pkt: &[u8]) -> u32 {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(pkt);
        prog.test_run(opts).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {pkt:02x?}: {e}")).return_value
    }

    /// Runs a packet the endpoint sends (tc ingress of its host veth).
    fn egress(&self, pkt: &[u8]) -> u32 {
        Self::run(&self.from, pkt)
    }

    /// Runs a packet sent to the endpoint (tc egress of its host veth).
    fn ingress(&self, pkt: &[u8]) -> u32 {
        Self::run(&self.to, pkt)
    }

    fn events(&mut self) -> Vec<Event> {
        self.events.collect_for(Duration::from_millis(50), Duration::from_secs(2)).unwrap()
    }

    fn metric(&self, reason: Reason, dir: &str) -> u64 {
        self.maps
            .metrics()
            .unwrap()
            .iter()
            .filter(|m| m.reason == reason.0 && m.direction == dir)
            .map(|m| m.packets)
            .sum()
    }

    fn rule(&self, identity: u32, dport: u16, proto: u8, dir: u8, action: u8) {
        let key = PolicyKey { endpoint_id: EP_ID, identity, dport, proto, direction: dir };
        self.maps.policy_add(key, action).unwrap();
    }

    fn bpffs(&self) -> &std::path::Path {
        self.fs.path()
    }

    fn verdicts(&mut self) -> Vec<(u8, u8, u8)> {
        self.events()
            .iter()
            .filter(|e| e.hdr.r#type == abi::EVENT_POLICY_VERDICT)
            .map(|e| (e.hdr.subtype, e.hdr.verdict, e.hdr.flags))
            .collect()
    }

    fn drops(events: &[Event]) -> Vec<u8> {
        events.iter().filter(|e| e.hdr.r#type == abi::EVENT_DROP).map(|e| e.hdr.subtype).collect()
    }
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64).tcp(sport, dport, 1, 1024);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64).udp(sport, dport).write(&mut out, b"payload").unwrap();
    out
}

fn udp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(src, dst, 64).udp(sport, dport).write(&mut out, b"payload").unwrap();
    out
}

fn tcp6_syn(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, 64)
        .tcp(sport, dport, 1, 1024)
        .syn()
        .write(&mut out, &[])
        .unwrap();
    out
}

#[test]
fn new_connection_allowed_then_established_then_reply() {
    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    dp.rule(abi::IDENTITY_ANY, 80, 6, abi::DIR_EGRESS, abi::POLICY_ALLOW);

    assert_eq!(dp.egress(&tcp4(EP4, PEER4, 40000, 80, true, false)), TC_ACT_OK, "SYN allowed by the L4-only rule");
    assert_eq!(dp.egress(&tcp4(EP4, PEER4, 40000, 80, false, true)), TC_ACT_OK, "established");
    assert_eq!(dp.ingress(&tcp4(PEER4, EP4, 80, 40000, true, true)), TC_ACT_OK, "the reply passes without a rule");

    let ct = dp.maps.ct4_list().unwrap();
    assert_eq!(ct.len(), 1, "{ct:?}");
    let (k, e) = &ct[0];
    assert_eq!((k.saddr, k.daddr, k.sport, k.dport, k.proto, k.direction), (EP4, PEER4, 40000, 80, 6, abi::DIR_EGRESS));
    assert_eq!((e.packets_fwd, e.packets_rev), (2, 1));
    assert_eq!(e.bytes_fwd, 2 * 54);
    assert_eq!(e.src_identity, EP_IDENTITY);
    assert_eq!(e.lifetime_s, abi::CT_LIFETIME_TCP, "established TCP");

    let rules = dp.maps.policy_list().unwrap();
    assert_eq!(rules[0].1.packets, 1, "policy is looked up for the first packet only");

    let ev = dp.events();
    let kinds: Vec<_> = ev.iter().map(|e| (e.hdr.r#type, e.hdr.subtype, e.hdr.ct_state)).collect();
    assert_eq!(
        kinds,
        vec![
            (abi::EVENT_POLICY_VERDICT, abi::MATCH_L4_ONLY, abi::CT_NEW),
            (abi::EVENT_TRACE, abi::TRACE_FROM_ENDPOINT, abi::CT_NEW),
            (abi::EVENT_TRACE, abi::TRACE_FROM_ENDPOINT, abi::CT_ESTABLISHED),
            (abi::EVENT_TRACE, abi::TRACE_TO_ENDPOINT, abi::CT_REPLY),
        ],
        "verdict, new, ACK is a new flag, SYN-ACK reply"
    );
    assert_eq!(
        (ev[0].hdr.src_identity, ev[0].hdr.dst_identity),
        (EP_IDENTITY, PEER_IDENTITY),
        "ipcache gave the peer's identity"
    );
    assert_eq!(dp.metric(Reason::FORWARDED, "egress"), 2);
    assert_eq!(dp.metric(Reason::FORWARDED, "ingress"), 1);
}

#[test]
fn enforcement_off_passes_without_rules() {
    let dp = Dp::new(0);
    assert_eq!(dp.egress(&udp4(EP4, PEER4, 1000, 2000)), TC_ACT_OK);
    assert_eq!(dp.ingress(&udp4(PEER4, EP4, 3000, 4000)), TC_ACT_OK);
    assert_eq!(dp.maps.ct4_list().unwrap().len(), 2);
}

#[test]
fn ipv6_paths() {
    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    dp.rule(PEER_IDENTITY, 0, 0, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    assert_eq!(dp.egress(&tcp6_syn(EP6, PEER6, 1234, 80)), TC_ACT_OK);
    // A hop-by-hop header before UDP is walked to reach the ports.
    let mut pkt = udp6(EP6, PEER6, 5555, 53);
    pkt[14 + 6] = 0; // next header: hop-by-hop
    pkt.splice(54..54, [17u8, 0, 1, 4, 0, 0, 0, 0]);
    let plen = u16::from_be_bytes([pkt[18], pkt[19]]) + 8;
    pkt[18..20].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(dp.egress(&pkt), TC_ACT_OK);
    let ct = dp.maps.ct6_list().unwrap();
    assert_eq!(ct.len(), 2);
    assert!(ct.iter().any(|(k, _)| k.proto == 17 && k.sport == 5555 && k.dport == 53), "{ct:?}");
    // Neighbour solicitation from an address no endpoint has: link housekeeping passes.
    let mut ns = Vec::new();
    let ll = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(ll, EP6, 255)
        .icmpv6(etherparse::Icmpv6Type::Unknown { type_u8: 135, code_u8: 0, bytes5to8: [0; 4] })
        .write(&mut ns, &[0u8; 16])
        .unwrap();
    assert_eq!(dp.egress(&ns), TC_ACT_OK);
    let ev = dp.events();
    assert!(ev.iter().all(|e| e.hdr.r#type != abi::EVENT_DROP), "{ev:?}");
}

#[test]
fn icmp_echo_reply_matches_request() {
    let dp = Dp::new(abi::EP_ENFORCE_INGRESS);
    let mut req = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(EP4, PEER4, 64)
        .icmpv4_echo_request(77, 1)
        .write(&mut req, b"x")
        .unwrap();
    let mut rep = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A).ipv4(PEER4, EP4, 64).icmpv4_echo_reply(77, 1).write(&mut rep, b"x").unwrap();
    assert_eq!(dp.egress(&req), TC_ACT_OK, "egress not enforced");
    assert_eq!(dp.ingress(&rep), TC_ACT_OK, "the reply is matched to the request, no ingress rule needed");
    let ct = dp.maps.ct4_list().unwrap();
    assert_eq!(ct.len(), 1);
    assert_eq!((ct[0].0.sport, ct[0].0.dport, ct[0].1.packets_rev), (77, 0, 1));
    // An unsolicited echo reply is a new flow and ingress is enforced: dropped.
    let mut other = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(PEER4, EP4, 64)
        .icmpv4_echo_reply(99, 1)
        .write(&mut other, b"x")
        .unwrap();
    assert_eq!(dp.ingress(&other), TC_ACT_SHOT);
}

#[test]
fn malformed_and_unknown_packets() {
    let mut dp = Dp::new(0);
    let good = tcp4(EP4, PEER4, 1, 2, true, false);

    // IPv4 total length shorter than its header. (A header cut short cannot
    // be tried here: BPF_PROG_TEST_RUN itself refuses such a packet.)
    let mut bad = good.clone();
    bad[16..18].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(dp.egress(&bad), TC_ACT_SHOT);
    // Not version 4 behind an IPv4 ethertype.
    let mut bad = good.clone();
    bad[14] = 0x65;
    assert_eq!(dp.egress(&bad), TC_ACT_SHOT);
    // IHL below 5.
    let mut bad = good.clone();
    bad[14] = 0x44;
    assert_eq!(dp.egress(&bad), TC_ACT_SHOT);
    assert_eq!(dp.metric(Reason::INVALID_PACKET, "egress"), 3);

    // TCP header cut short.
    assert_eq!(dp.egress(&good[..14 + 20 + 8]), TC_ACT_SHOT);
    // TCP data offset below 5.
    let mut bad = good.clone();
    bad[14 + 20 + 12] = 0x20;
    assert_eq!(dp.egress(&bad), TC_ACT_SHOT);
    assert_eq!(dp.metric(Reason::CT_TRUNCATED, "egress"), 2);

    // ARP passes and is counted.
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(dp.egress(&arp), TC_ACT_OK);
    assert_eq!(dp.metric(Reason::PASS_OTHER_L3, "egress"), 1);

    // GRE (47) is a protocol without ports: tracked with ports 0 and, with
    // enforcement off, forwarded.
    let mut gre = udp4(EP4, PEER4, 1, 2);
    gre[14 + 9] = 47;
    assert_eq!(dp.egress(&gre), TC_ACT_OK);
    assert_eq!(dp.metric(Reason::FORWARDED, "egress"), 1);
    let ct = dp.maps.ct4_list().unwrap();
    assert!(ct.iter().any(|(k, _)| k.proto == 47 && k.sport == 0 && k.dport == 0), "{ct:?}");

    // A source that is not this interface's endpoint: spoofed.
    assert_eq!(dp.egress(&udp4([192, 0, 2, 99], PEER4, 1, 2)), TC_ACT_SHOT);
    assert_eq!(dp.metric(Reason::INVALID_SOURCE_IP, "egress"), 1);
    // A destination no endpoint has, on an endpoint's interface.
    assert_eq!(dp.ingress(&udp4(PEER4, [192, 0, 2, 98], 1, 2)), TC_ACT_SHOT);
    assert_eq!(dp.metric(Reason::UNROUTABLE, "ingress"), 1);

    // Garbage of every length never upsets the program (lengths the kernel's
    // test runner refuses are skipped; most are run).
    let mut ran = 0;
    for len in 14..120 {
        let mut g: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        for ethertype in [[0x08, 0x00], [0x86, 0xdd]] {
            g[12..14].copy_from_slice(&ethertype);
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(&g);
            if let Ok(r) = dp.from.test_run(opts) {
                assert!(r.return_value == TC_ACT_OK || r.return_value == TC_ACT_SHOT);
                ran += 1;
            }
        }
    }
    assert!(ran > 150, "only {ran} garbage packets ran");

    let ev = dp.events();
    let drops: Vec<u8> = ev.iter().filter(|e| e.hdr.r#type == abi::EVENT_DROP).map(|e| e.hdr.subtype).take(7).collect();
    assert_eq!(
        drops,
        vec![
            Reason::INVALID_PACKET.0,
            Reason::INVALID_PACKET.0,
            Reason::INVALID_PACKET.0,
            Reason::CT_TRUNCATED.0,
            Reason::CT_TRUNCATED.0,
            Reason::INVALID_SOURCE_IP.0,
            Reason::UNROUTABLE.0
        ]
    );
    let first = &ev[0];
    assert_eq!(first.hdr.cap_len as usize, good.len(), "a short packet is captured whole");
    assert_eq!(first.data[..14], good[..14]);
}

#[test]
fn snaplen_limits_the_capture() {
    let fs = TestBpffs::new();
    datapath::load(
        fs.path(),
        &Settings { snaplen: 32, aggregation: datapath::Aggregation::None, ..Settings::default() },
    )
    .unwrap();
    let pins = Pins::new(fs.path());
    let from = SchedClassifier::from_pin(pins.prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
    let maps = Maps::open(fs.path()).unwrap();
    let info = EndpointInfo { endpoint_id: 1, identity: 300, ifindex: LO, mac: MAC_A, flags: 0 };
    maps.endpoint_upsert(IpAddr::V4(Ipv4Addr::from(EP4)), info).unwrap();
    let mut reader = EventReader::open(fs.path(), Transport::Ringbuf).unwrap();
    let pkt = udp4(EP4, PEER4, 9, 10);
    for _ in 0..3 {
        assert_eq!(Dp::run(&from, &pkt), TC_ACT_OK);
    }
    let ev = reader.collect_for(Duration::from_millis(50), Duration::from_secs(2)).unwrap();
    assert_eq!(ev.len(), 3, "aggregation none traces every packet");
    assert!(ev.iter().all(|e| e.hdr.cap_len == 32 && e.hdr.orig_len as usize == pkt.len() && e.data == pkt[..32]));
    let _ = Ipv6Addr::LOCALHOST;
}

/// A UDP frame of `len` bytes on the wire, its payload a counting pattern
/// (a copy that skips or repeats a byte shows).
fn udp4_frame(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len - 42).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(EP4, PEER4, 64).udp(9, 10).write(&mut out, &payload).unwrap();
    assert_eq!(out.len(), len);
    out
}

/// Snap lengths above the fixed ring record (1518: a whole Ethernet frame;
/// 9216: a jumbo one) capture the packet whole on both transports, and the
/// ring holds each record at its own length, not the largest one's.
fn large_snaplen_captures_whole_frames(transport: Transport) {
    for snaplen in [1518u32, abi::SNAPLEN_MAX] {
        let fs = TestBpffs::new();
        let settings = Settings { snaplen, transport, aggregation: datapath::Aggregation::None, ..Settings::default() };
        datapath::load(fs.path(), &settings).unwrap();
        let pins = Pins::new(fs.path());
        let from = SchedClassifier::from_pin(pins.prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
        let maps = Maps::open(fs.path()).unwrap();
        let info = EndpointInfo { endpoint_id: 1, identity: 300, ifindex: LO, mac: MAC_A, flags: 0 };
        maps.endpoint_upsert(IpAddr::V4(Ipv4Addr::from(EP4)), info).unwrap();
        let mut reader = EventReader::open(fs.path(), transport).unwrap();
        // BPF_PROG_TEST_RUN takes a page at most: a full Ethernet frame, a small one.
        let (full, small) = (udp4_frame(1514), udp4_frame(60));
        for pkt in [&full, &small] {
            assert_eq!(Dp::run(&from, pkt), TC_ACT_OK);
        }
        let mut lens = Vec::new();
        let mut ev = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while ev.len() < 2 && std::time::Instant::now() < deadline {
            reader.wait(Duration::from_millis(50)).unwrap();
            reader.drain(|rec| {
                lens.push(rec.len());
                ev.push(dpdbg::events::decode(rec).unwrap());
            });
        }
        ev.sort_by_key(|e| e.hdr.timestamp_ns);
        assert_eq!(ev.len(), 2, "snaplen {snaplen}: both packets traced");
        for (e, pkt) in ev.iter().zip([&full, &small]) {
            assert_eq!((e.hdr.cap_len as usize, e.hdr.orig_len as usize), (pkt.len(), pkt.len()), "snaplen {snaplen}");
            assert!(e.data == pkt[..], "snaplen {snaplen}: the frame's bytes, whole and in order");
        }
        if transport == Transport::Ringbuf {
            assert_eq!(lens, vec![40 + 1514, 40 + 60], "snaplen {snaplen}: ring records at their own length");
        }
        assert_eq!(reader.lost, 0);
    }
}

#[test]
fn large_snaplen_ringbuf() {
    large_snaplen_captures_whole_frames(Transport::Ringbuf);
}

#[test]
fn large_snaplen_perf() {
    large_snaplen_captures_whole_frames(Transport::Perf);
}

/// At the default snap length the ring keeps its fixed-size records.
#[test]
fn default_snaplen_keeps_the_fixed_ring_record() {
    let fs = TestBpffs::new();
    datapath::load(fs.path(), &Settings { aggregation: datapath::Aggregation::None, ..Settings::default() }).unwrap();
    let pins = Pins::new(fs.path());
    let from = SchedClassifier::from_pin(pins.prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
    let maps = Maps::open(fs.path()).unwrap();
    let info = EndpointInfo { endpoint_id: 1, identity: 300, ifindex: LO, mac: MAC_A, flags: 0 };
    maps.endpoint_upsert(IpAddr::V4(Ipv4Addr::from(EP4)), info).unwrap();
    let mut reader = EventReader::open(fs.path(), Transport::Ringbuf).unwrap();
    let full = udp4_frame(1514);
    assert_eq!(Dp::run(&from, &full), TC_ACT_OK);
    let mut recs = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while recs.is_empty() && std::time::Instant::now() < deadline {
        reader.wait(Duration::from_millis(50)).unwrap();
        reader.drain(|rec| recs.push(rec.to_vec()));
    }
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].len(), abi::EVENT_RECORD_SIZE, "reserved at the fixed size, as before");
    let e = dpdbg::events::decode(&recs[0]).unwrap();
    assert_eq!((e.hdr.cap_len, e.hdr.orig_len), (128, 1514));
    assert!(e.data == full[..128]);
}

fn icmp4_echo(src: [u8; 4], dst: [u8; 4], id: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64).icmpv4_echo_request(id, 1).write(&mut out, b"x").unwrap();
    out
}

fn tcp4_flags(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64).tcp(sport, dport, 1, 1024);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// An IPv4 packet of protocol `proto` with `payload` (no L4 header we know).
fn ip4_proto(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let ip = etherparse::Ipv4Header::new(payload.len() as u16, 64, etherparse::IpNumber(proto), src, dst).unwrap();
    etherparse::Ethernet2Header { source: MAC_A, destination: MAC_B, ether_type: etherparse::EtherType::IPV4 }
        .write(&mut out)
        .unwrap();
    ip.write(&mut out).unwrap();
    out.extend_from_slice(payload);
    out
}

/// `pkt` (IPv6) with `n` destination-options headers between IPv6 and its L4 header.
fn with_dstopts(mut pkt: Vec<u8>, n: usize) -> Vec<u8> {
    let l4 = pkt[14 + 6];
    let mut chain = Vec::new();
    for i in 0..n {
        let next = if i + 1 == n { l4 } else { 60 };
        chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    if n > 0 {
        pkt[14 + 6] = 60;
    }
    pkt.splice(54..54, chain.iter().copied());
    let plen = u16::from_be_bytes([pkt[18], pkt[19]]) + chain.len() as u16;
    pkt[18..20].copy_from_slice(&plen.to_be_bytes());
    pkt
}

/// Splits an IPv4 packet's payload after `first` bytes into two fragments of datagram `id`.
fn fragments4(pkt: &[u8], first: usize, id: u16) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(first % 8, 0);
    let (hdr, payload) = pkt.split_at(14 + 20);
    let mk = |data: &[u8], offset: usize, more: bool| {
        let mut out = hdr.to_vec();
        out[14 + 2..14 + 4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        out[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
        let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        out[14 + 6..14 + 8].copy_from_slice(&fo.to_be_bytes());
        out.extend_from_slice(data);
        out
    };
    (mk(&payload[..first], 0, true), mk(&payload[first..], first, false))
}

/// Splits an IPv6 packet's payload into two fragments (a fragment header each).
fn fragments6(pkt: &[u8], first: usize, id: u32) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(first % 8, 0);
    let (hdr, payload) = pkt.split_at(14 + 40);
    let next = hdr[14 + 6];
    let mk = |data: &[u8], offset: usize, more: bool| {
        let mut out = hdr.to_vec();
        out[14 + 6] = 44;
        out[18..20].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        let fo = (offset as u16) | u16::from(more);
        out.extend_from_slice(&[next, 0]);
        out.extend_from_slice(&fo.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(data);
        out
    };
    (mk(&payload[..first], 0, true), mk(&payload[first..], first, false))
}

/// An ICMP error from `from` to `to` quoting the first 28 bytes of `quoted`'s IP packet.
fn icmp4_error(from: [u8; 4], to: [u8; 4], icmp_type: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(from, to, 64)
        .icmpv4(etherparse::Icmpv4Type::Unknown { type_u8: icmp_type, code_u8: code, bytes5to8: [0, 0, 5, 120] })
        .write(&mut out, &quoted[14..14 + 28])
        .unwrap();
    out
}

fn icmp6_error(from: [u8; 16], to: [u8; 16], icmp_type: u8, quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv6(from, to, 64)
        .icmpv6(etherparse::Icmpv6Type::Unknown { type_u8: icmp_type, code_u8: 0, bytes5to8: [0, 0, 5, 0] })
        .write(&mut out, &quoted[14..14 + 48])
        .unwrap();
    out
}

const ROUTER4: [u8; 4] = [198, 51, 100, 1];
const ROUTER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1];

/// Cilium's documented deny-policy examples, and a deny and an allow at every
/// level: a deny that matches at any level wins over an allow at any level,
/// and the verdict says which level decided and that a deny overrode an allow.
#[test]
fn deny_precedence_table() {
    use abi::{DIR_EGRESS as EG, IDENTITY_ANY as ANY, POLICY_ALLOW as ALLOW, POLICY_DENY as DENY};
    const OVERRODE: u8 = abi::EVF_DENY_OVERRODE_ALLOW;
    struct Case {
        what: &'static str,
        rules: &'static [(u32, u16, u8, u8)],
        packet: fn(u16) -> Vec<u8>,
        sport: u16,
        expect: u32,
        verdict: (u8, u8, u8),
        reason: Option<Reason>,
    }
    let tcp80: fn(u16) -> Vec<u8> = |s| tcp4(EP4, PEER4, s, 80, true, false);
    let tcp81: fn(u16) -> Vec<u8> = |s| tcp4(EP4, PEER4, s, 81, true, false);
    let ping: fn(u16) -> Vec<u8> = |s| icmp4_echo(EP4, PEER4, s);
    let l4_allow_l3_deny: &[(u32, u16, u8, u8)] = &[(ANY, 80, 6, ALLOW), (PEER_IDENTITY, 0, 0, DENY)];
    let l4_deny_l3_allow: &[(u32, u16, u8, u8)] = &[(ANY, 80, 6, DENY), (PEER_IDENTITY, 0, 0, ALLOW)];
    let dropped = abi::VERDICT_DROPPED;
    let fwd = abi::VERDICT_FORWARDED;
    let cases = [
        // cilium: an L4 allow on 80/TCP plus an L3 deny for the client.
        Case {
            what: "L4 allow 80 + L3 deny: port 80",
            rules: l4_allow_l3_deny,
            packet: tcp80,
            sport: 1000,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_L3_ONLY, dropped, OVERRODE),
            reason: Some(Reason::POLICY_DENYLIST),
        },
        Case {
            what: "L4 allow 80 + L3 deny: port 81",
            rules: l4_allow_l3_deny,
            packet: tcp81,
            sport: 1001,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_L3_ONLY, dropped, 0),
            reason: Some(Reason::POLICY_DENYLIST),
        },
        Case {
            what: "L4 allow 80 + L3 deny: ping",
            rules: l4_allow_l3_deny,
            packet: ping,
            sport: 1002,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_L3_ONLY, dropped, 0),
            reason: Some(Reason::POLICY_DENYLIST),
        },
        // cilium: only an L4 deny on 80; 81 is allowed when an allow covers it.
        Case {
            what: "L4 deny 80 + L3 allow: port 80",
            rules: l4_deny_l3_allow,
            packet: tcp80,
            sport: 1003,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_L4_ONLY, dropped, OVERRODE),
            reason: Some(Reason::POLICY_DENYLIST),
        },
        Case {
            what: "L4 deny 80 + L3 allow: port 81",
            rules: l4_deny_l3_allow,
            packet: tcp81,
            sport: 1004,
            expect: TC_ACT_OK,
            verdict: (abi::MATCH_L3_ONLY, fwd, 0),
            reason: None,
        },
        Case {
            what: "L4 deny 80 alone: port 81 has no allow",
            rules: &[(ANY, 80, 6, DENY)],
            packet: tcp81,
            sport: 1005,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_NONE, dropped, 0),
            reason: Some(Reason::POLICY_DENIED),
        },
        // A deny at each level beats an allow at another.
        Case {
            what: "L3-L4 deny over any-allow",
            rules: &[(PEER_IDENTITY, 80, 6, DENY), (ANY, 0, 0, ALLOW)],
            packet: tcp80,
            sport: 1006,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_L3_L4, dropped, OVERRODE),
            reason: Some(Reason::POLICY_DENYLIST),
        },
        Case {
            what: "any-deny over L3-L4 allow",
            rules: &[(PEER_IDENTITY, 80, 6, ALLOW), (ANY, 0, 0, DENY)],
            packet: tcp80,
            sport: 1007,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_ALL, dropped, OVERRODE),
            reason: Some(Reason::POLICY_DENYLIST),
        },
        // Allows at each level; among allows any match allows, the most specific is reported.
        Case {
            what: "L3-L4 allow",
            rules: &[(PEER_IDENTITY, 80, 6, ALLOW), (ANY, 0, 0, ALLOW)],
            packet: tcp80,
            sport: 1008,
            expect: TC_ACT_OK,
            verdict: (abi::MATCH_L3_L4, fwd, 0),
            reason: None,
        },
        Case {
            what: "L3-only allow",
            rules: &[(PEER_IDENTITY, 0, 0, ALLOW)],
            packet: tcp80,
            sport: 1009,
            expect: TC_ACT_OK,
            verdict: (abi::MATCH_L3_ONLY, fwd, 0),
            reason: None,
        },
        Case {
            what: "L4-only allow",
            rules: &[(ANY, 80, 6, ALLOW)],
            packet: tcp80,
            sport: 1010,
            expect: TC_ACT_OK,
            verdict: (abi::MATCH_L4_ONLY, fwd, 0),
            reason: None,
        },
        Case {
            what: "any allow",
            rules: &[(ANY, 0, 0, ALLOW)],
            packet: ping,
            sport: 1011,
            expect: TC_ACT_OK,
            verdict: (abi::MATCH_ALL, fwd, 0),
            reason: None,
        },
        Case {
            what: "no rule",
            rules: &[],
            packet: tcp80,
            sport: 1012,
            expect: TC_ACT_SHOT,
            verdict: (abi::MATCH_NONE, dropped, 0),
            reason: Some(Reason::POLICY_DENIED),
        },
    ];
    for c in cases {
        let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS);
        for &(identity, port, proto, action) in c.rules {
            dp.rule(identity, port, proto, EG, action);
        }
        assert_eq!(dp.egress(&(c.packet)(c.sport)), c.expect, "{}", c.what);
        let ev = dp.events();
        let verdicts: Vec<_> = ev
            .iter()
            .filter(|e| e.hdr.r#type == abi::EVENT_POLICY_VERDICT)
            .map(|e| (e.hdr.subtype, e.hdr.verdict, e.hdr.flags))
            .collect();
        assert_eq!(verdicts, vec![c.verdict], "{}", c.what);
        assert_eq!(Dp::drops(&ev), c.reason.map(|r| r.0).into_iter().collect::<Vec<_>>(), "{}", c.what);
        // The deciding rule's counter moved, and only that one.
        let counted: Vec<_> = dp.maps.policy_list().unwrap().into_iter().filter(|(_, v)| v.packets > 0).collect();
        if c.verdict.0 == abi::MATCH_NONE {
            assert!(counted.is_empty(), "{}: {counted:?}", c.what);
        } else {
            assert_eq!(counted.len(), 1, "{}: {counted:?}", c.what);
            let deny = c.verdict.1 == dropped;
            assert_eq!(counted[0].1.action == abi::POLICY_DENY, deny, "{}: {counted:?}", c.what);
        }
    }
}

#[test]
fn policy_add_deny_wins_in_user_space() {
    let dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    let key =
        PolicyKey { endpoint_id: EP_ID, identity: PEER_IDENTITY, dport: 80, proto: 6, direction: abi::DIR_EGRESS };
    assert_eq!(dp.maps.policy_add(key, abi::POLICY_DENY).unwrap(), PolicyAdd::Added);
    let err = dp.maps.policy_add(key, abi::POLICY_ALLOW).unwrap_err();
    assert!(matches!(err, dpdbg::Error::PolicyConflict { .. }), "{err}");
    assert!(err.to_string().contains("deny rule already exists"), "{err}");
    assert_eq!(dp.maps.policy_list().unwrap()[0].1.action, abi::POLICY_DENY, "the deny is still there");

    // An identical rule keeps the existing one and its counters.
    assert_eq!(dp.egress(&tcp4(EP4, PEER4, 2000, 80, true, false)), TC_ACT_SHOT);
    assert_eq!(dp.maps.policy_add(key, abi::POLICY_DENY).unwrap(), PolicyAdd::Unchanged);
    assert_eq!(dp.maps.policy_list().unwrap()[0].1.packets, 1, "counters kept");

    // A deny replaces an allow.
    let other = PolicyKey { dport: 81, ..key };
    assert_eq!(dp.maps.policy_add(other, abi::POLICY_ALLOW).unwrap(), PolicyAdd::Added);
    assert_eq!(dp.maps.policy_add(other, abi::POLICY_ALLOW).unwrap(), PolicyAdd::Unchanged);
    assert_eq!(dp.maps.policy_add(other, abi::POLICY_DENY).unwrap(), PolicyAdd::Replaced);

    // Racing adds of an allow and a deny for one key always end with the deny.
    let bpffs = dp.bpffs().to_path_buf();
    for round in 0..200u16 {
        let k = PolicyKey { dport: 1000 + round, ..key };
        let threads: Vec<_> = [abi::POLICY_ALLOW, abi::POLICY_DENY]
            .into_iter()
            .map(|action| {
                let bpffs = bpffs.clone();
                std::thread::spawn(move || {
                    let maps = Maps::open(&bpffs).unwrap();
                    let _ = maps.policy_add(k, action);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let rules = dp.maps.policy_list().unwrap();
        let r = rules.iter().find(|(rk, _)| *rk == k).unwrap();
        assert_eq!(r.1.action, abi::POLICY_DENY, "round {round}");
    }
}

/// Every packet kind on an enforced endpoint with no rules is dropped,
/// and passes (counted) without enforcement.
#[test]
fn default_deny_has_no_holes() {
    let gre = ip4_proto(EP4, PEER4, 47, &[0, 0, 0x08, 0, 1, 2, 3, 4]);
    let esp6 = {
        let mut p = udp6(EP6, PEER6, 1, 2);
        p[14 + 6] = 50;
        p
    };
    let sctp = ip4_proto(EP4, PEER4, 132, &[0x13, 0x88, 0x13, 0x89, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (first, later) = fragments4(&udp4(EP4, PEER4, 5000, 53), 8, 0x1234);
    let (_, orphan) = fragments4(&udp4(EP4, PEER4, 5001, 53), 8, 0x4321);
    let (_, orphan6) = fragments6(&udp6(EP6, PEER6, 5002, 53), 8, 0xabcdef);
    let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
        ("TCP SYN", tcp4(EP4, PEER4, 3000, 80, true, false), Reason::POLICY_DENIED),
        ("TCP ACK without a connection", tcp4(EP4, PEER4, 3001, 80, false, true), Reason::POLICY_DENIED),
        ("UDP", udp4(EP4, PEER4, 3002, 53), Reason::POLICY_DENIED),
        ("ICMP echo", icmp4_echo(EP4, PEER4, 9), Reason::POLICY_DENIED),
        ("GRE", gre, Reason::POLICY_DENIED),
        ("SCTP", sctp, Reason::POLICY_DENIED),
        ("ESP over IPv6", esp6, Reason::POLICY_DENIED),
        (
            "UDP over IPv6 behind 3 destination options",
            with_dstopts(udp6(EP6, PEER6, 3003, 53), 3),
            Reason::POLICY_DENIED,
        ),
        ("IPv6 with 9 destination options", with_dstopts(udp6(EP6, PEER6, 3004, 53), 9), Reason::INVALID_EXTHDR),
        ("IPv4 first fragment", first, Reason::POLICY_DENIED),
        ("IPv4 later fragment of a denied datagram", later, Reason::POLICY_DENIED),
        ("IPv4 fragment without its first", orphan, Reason::FRAG_NOT_FOUND),
        ("IPv6 fragment without its first", orphan6, Reason::FRAG_NOT_FOUND),
    ];
    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS | abi::EP_ENFORCE_INGRESS);
    for (what, pkt, reason) in &cases {
        assert_eq!(dp.egress(pkt), TC_ACT_SHOT, "{what}");
        let ev = dp.events();
        assert_eq!(Dp::drops(&ev), vec![reason.0], "{what}: {ev:?}");
    }
    assert!(dp.maps.ct4_list().unwrap().is_empty() && dp.maps.ct6_list().unwrap().is_empty(), "nothing tracked");

    // Without enforcement the same packets pass, except a chain the walker
    // cannot finish, which is not a packet it can classify at all.
    let dp = Dp::new(0);
    for (what, pkt, reason) in &cases {
        let expect = if *reason == Reason::INVALID_EXTHDR { TC_ACT_SHOT } else { TC_ACT_OK };
        assert_eq!(dp.egress(pkt), expect, "{what} without enforcement");
    }
    let ct = dp.maps.ct4_list().unwrap();
    assert!(ct.iter().any(|(k, _)| k.proto == 47 && (k.sport, k.dport) == (0, 0)), "GRE tracked with ports 0: {ct:?}");
    assert!(ct.iter().any(|(k, _)| k.proto == 132 && (k.sport, k.dport) == (0, 0)), "SCTP tracked with ports 0");
    let frag = ct.iter().find(|(k, _)| k.proto == 17 && k.sport == 5000).expect("the fragmented datagram's entry");
    assert_eq!(frag.1.packets_fwd, 2, "both fragments on one entry: {frag:?}");
}

/// Protocols without ports are first-class in policy: L3-only and "any"
/// rules match them, and an L4 rule names the protocol with port 0.
#[test]
fn unknown_l4_protocols_follow_policy() {
    let gre = ip4_proto(EP4, PEER4, 47, &[0, 0, 0x08, 0, 1, 2, 3, 4]);
    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    dp.rule(abi::IDENTITY_ANY, 0, 6, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    assert_eq!(dp.egress(&gre), TC_ACT_SHOT, "a TCP rule does not allow GRE");
    dp.rule(PEER_IDENTITY, 0, 47, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    assert_eq!(dp.egress(&gre), TC_ACT_OK, "an L3-L4 rule on protocol 47");
    assert_eq!(
        dp.verdicts(),
        vec![(abi::MATCH_NONE, abi::VERDICT_DROPPED, 0), (abi::MATCH_L3_L4, abi::VERDICT_FORWARDED, 0)]
    );
    assert_eq!(dp.egress(&gre), TC_ACT_OK, "tracked now");
    let ct = dp.maps.ct4_list().unwrap();
    assert_eq!(ct.len(), 1);
    assert_eq!((ct[0].0.proto, ct[0].1.packets_fwd), (47, 2));

    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    dp.rule(PEER_IDENTITY, 0, 0, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    assert_eq!(dp.egress(&gre), TC_ACT_OK, "L3-only allow");
    assert_eq!(dp.verdicts(), vec![(abi::MATCH_L3_ONLY, abi::VERDICT_FORWARDED, 0)]);
}

#[test]
fn ipv6_extension_header_walk() {
    let dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    dp.rule(PEER_IDENTITY, 53, 17, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    // Eight headers is as far as the walker goes: the ports behind them are found.
    assert_eq!(dp.egress(&with_dstopts(udp6(EP6, PEER6, 4000, 53), 8)), TC_ACT_OK);
    // An authentication header counts its length in 4-byte units.
    let mut ah = udp6(EP6, PEER6, 4001, 53);
    ah[14 + 6] = 51;
    ah.splice(54..54, [17u8, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    let plen = u16::from_be_bytes([ah[18], ah[19]]) + 12;
    ah[18..20].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(dp.egress(&ah), TC_ACT_OK);
    // "No next header" has nothing to classify.
    let mut none = udp6(EP6, PEER6, 4002, 53);
    none[14 + 6] = 59;
    assert_eq!(dp.egress(&none), TC_ACT_SHOT);
    assert_eq!(dp.metric(Reason::INVALID_EXTHDR, "egress"), 1);
    let ct = dp.maps.ct6_list().unwrap();
    let ports: Vec<_> = ct.iter().map(|(k, _)| (k.proto, k.sport, k.dport)).collect();
    assert!(ports.contains(&(17, 4000, 53)) && ports.contains(&(17, 4001, 53)), "{ports:?}");
}

#[test]
fn fragments_share_their_first_fragments_verdict() {
    let dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    dp.rule(PEER_IDENTITY, 53, 17, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    let (first, later) = fragments4(&udp4(EP4, PEER4, 6000, 53), 8, 77);
    assert_eq!(dp.egress(&first), TC_ACT_OK);
    assert_eq!(dp.egress(&later), TC_ACT_OK, "the later fragment carries no ports but gets the first's");
    let ct = dp.maps.ct4_list().unwrap();
    assert_eq!(ct.len(), 1, "{ct:?}");
    assert_eq!((ct[0].0.sport, ct[0].0.dport, ct[0].1.packets_fwd), (6000, 53, 2));
    // A datagram to a port no rule allows: both fragments dropped.
    let (first, later) = fragments4(&udp4(EP4, PEER4, 6001, 54), 8, 78);
    assert_eq!(dp.egress(&first), TC_ACT_SHOT);
    assert_eq!(dp.egress(&later), TC_ACT_SHOT);
    // IPv6 through its fragment header.
    let (first, later) = fragments6(&udp6(EP6, PEER6, 6002, 53), 8, 79);
    assert_eq!(dp.egress(&first), TC_ACT_OK);
    assert_eq!(dp.egress(&later), TC_ACT_OK);
    let ct6 = dp.maps.ct6_list().unwrap();
    assert_eq!(ct6.len(), 1, "{ct6:?}");
    assert_eq!((ct6[0].0.sport, ct6[0].1.packets_fwd), (6002, 2));
    assert_eq!(dp.metric(Reason::POLICY_DENIED, "egress"), 2);
}

fn ct4_map(dp: &Dp) -> aya::maps::HashMap<aya::maps::MapData, abi::Ct4Key, abi::CtEntry> {
    let data = aya::maps::MapData::from_pin(dp.maps.pin_path("ct4")).unwrap();
    aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(data).unwrap()).unwrap()
}

/// A SYN on a closed tuple is a new connection: policy is looked up again
/// and the entry starts over.
#[test]
fn closed_connection_reopens_through_policy() {
    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS | abi::EP_ENFORCE_INGRESS);
    dp.rule(PEER_IDENTITY, 80, 6, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    let out = |f: &str| tcp4_flags(EP4, PEER4, 45000, 80, f);
    let back = |f: &str| tcp4_flags(PEER4, EP4, 80, 45000, f);
    assert_eq!(dp.egress(&out("S")), TC_ACT_OK);
    assert_eq!(dp.ingress(&back("SA")), TC_ACT_OK);
    assert_eq!(dp.egress(&out("A")), TC_ACT_OK);
    assert_eq!(dp.egress(&out("FA")), TC_ACT_OK);
    assert_eq!(dp.ingress(&back("FA")), TC_ACT_OK);
    let (_, e) = dp.maps.ct4_list().unwrap()[0];
    assert_eq!(ct::state(6, &e), "CLOSED");
    assert_eq!(e.lifetime_s, abi::CT_LIFETIME_CLOSE);
    // An ACK of the closed connection is still the old connection.
    assert_eq!(dp.egress(&out("A")), TC_ACT_OK);
    let _ = dp.events();

    // Reopened: a verdict again (the rule counts a second packet), a fresh entry.
    assert_eq!(dp.egress(&out("S")), TC_ACT_OK);
    let ev = dp.events();
    let kinds: Vec<_> = ev.iter().map(|e| (e.hdr.r#type, e.hdr.ct_state)).collect();
    assert_eq!(kinds, vec![(abi::EVENT_POLICY_VERDICT, abi::CT_REOPENED), (abi::EVENT_TRACE, abi::CT_REOPENED)]);
    assert_eq!(dp.maps.policy_list().unwrap()[0].1.packets, 2, "policy looked up again");
    let (_, e) = dp.maps.ct4_list().unwrap()[0];
    assert_eq!((e.packets_fwd, e.packets_rev, e.flags & (abi::CT_F_CLOSING_FWD | abi::CT_F_CLOSING_REV)), (1, 0, 0));
    assert_eq!(e.lifetime_s, abi::CT_LIFETIME_TCP_SYN);

    // Closed again by a reset, and this time the rule is gone: the new SYN is refused.
    assert_eq!(dp.egress(&out("R")), TC_ACT_OK);
    let key =
        PolicyKey { endpoint_id: EP_ID, identity: PEER_IDENTITY, dport: 80, proto: 6, direction: abi::DIR_EGRESS };
    dp.maps.policy_delete(key).unwrap();
    assert_eq!(dp.egress(&out("S")), TC_ACT_SHOT);
    // A reply-direction SYN on a closed entry reopens as a new connection in its own direction.
    dp.rule(abi::IDENTITY_ANY, 45000, 6, abi::DIR_INGRESS, abi::POLICY_ALLOW);
    assert_eq!(dp.ingress(&back("S")), TC_ACT_OK);
    let ct = dp.maps.ct4_list().unwrap();
    assert!(ct.iter().any(|(k, _)| k.direction == abi::DIR_INGRESS && k.saddr == PEER4), "{ct:?}");
}

/// An entry past its lifetime counts as absent in the datapath itself.
#[test]
fn expired_entry_is_a_new_connection() {
    let dp = Dp::new(abi::EP_ENFORCE_EGRESS);
    dp.rule(PEER_IDENTITY, 53, 17, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    let pkt = udp4(EP4, PEER4, 7000, 53);
    assert_eq!(dp.egress(&pkt), TC_ACT_OK);
    let mut m = ct4_map(&dp);
    let (k, mut e) = m.iter().next().unwrap().unwrap();
    assert_eq!(e.lifetime_s, abi::CT_LIFETIME_NONTCP);
    // A fresh entry is stamped with the coarse clock user space reads.
    let now = dpdbg::sys::monotonic_coarse_ns();
    assert!(now.abs_diff(e.last_seen_ns) < 100_000_000, "last_seen {} vs now {now}", e.last_seen_ns);
    // One second short of expiry: still the same connection.
    e.last_seen_ns = now - (abi::CT_LIFETIME_NONTCP as u64 - 1) * 1_000_000_000;
    m.insert(k, e, 0).unwrap();
    assert_eq!(dp.egress(&pkt), TC_ACT_OK);
    assert_eq!(dp.maps.policy_list().unwrap()[0].1.packets, 1);
    let (_, e2) = m.iter().next().unwrap().unwrap();
    assert_eq!(e2.packets_fwd, 2);
    // Past it: a new connection, through policy, with a fresh entry.
    let mut e = e2;
    e.last_seen_ns = dpdbg::sys::monotonic_coarse_ns() - (abi::CT_LIFETIME_NONTCP as u64 + 1) * 1_000_000_000;
    m.insert(k, e, 0).unwrap();
    assert_eq!(dp.egress(&pkt), TC_ACT_OK);
    assert_eq!(dp.maps.policy_list().unwrap()[0].1.packets, 2, "policy looked up again");
    let (_, e3) = m.iter().next().unwrap().unwrap();
    assert_eq!(e3.packets_fwd, 1, "a fresh entry");
    // Expired and the rule gone: refused.
    let mut e = e3;
    e.last_seen_ns = dpdbg::sys::monotonic_coarse_ns() - (abi::CT_LIFETIME_NONTCP as u64 + 1) * 1_000_000_000;
    m.insert(k, e, 0).unwrap();
    let key =
        PolicyKey { endpoint_id: EP_ID, identity: PEER_IDENTITY, dport: 53, proto: 17, direction: abi::DIR_EGRESS };
    dp.maps.policy_delete(key).unwrap();
    assert_eq!(dp.egress(&pkt), TC_ACT_SHOT);
}

/// ICMP errors quoting a tracked connection pass as it passes (path MTU
/// discovery keeps working under enforcement) and say "related".
#[test]
fn icmp_errors_are_related_to_their_connection() {
    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS | abi::EP_ENFORCE_INGRESS);
    dp.rule(PEER_IDENTITY, 80, 6, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    let syn = tcp4(EP4, PEER4, 46000, 80, true, false);
    assert_eq!(dp.egress(&syn), TC_ACT_OK);
    let _ = dp.events();
    // Fragmentation needed, from a router on the path, about the SYN.
    assert_eq!(dp.ingress(&icmp4_error(ROUTER4, EP4, 3, 4, &syn)), TC_ACT_OK);
    // Time exceeded, likewise.
    assert_eq!(dp.ingress(&icmp4_error(ROUTER4, EP4, 11, 0, &syn)), TC_ACT_OK);
    let ev = dp.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().all(|e| e.hdr.r#type == abi::EVENT_TRACE && e.hdr.ct_state == abi::CT_RELATED), "{ev:?}");
    // An error about a connection nobody has: a flow of its own, refused.
    let other = tcp4(EP4, PEER4, 46001, 80, true, false);
    assert_eq!(dp.ingress(&icmp4_error(ROUTER4, EP4, 3, 4, &other)), TC_ACT_SHOT);
    // The endpoint may send an error about a packet it received on a tracked connection.
    let reply = tcp4(PEER4, EP4, 80, 46000, true, true);
    assert_eq!(dp.ingress(&reply), TC_ACT_OK);
    let mut unreach = icmp4_error(EP4, PEER4, 3, 3, &reply);
    unreach[0..12].copy_from_slice(&[MAC_A, MAC_B].concat());
    assert_eq!(dp.egress(&unreach), TC_ACT_OK);
    // ICMPv6 packet too big for an IPv6 connection.
    dp.rule(PEER_IDENTITY, 443, 6, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    let syn6 = tcp6_syn(EP6, PEER6, 46002, 443);
    assert_eq!(dp.egress(&syn6), TC_ACT_OK);
    let _ = dp.events();
    assert_eq!(dp.ingress(&icmp6_error(ROUTER6, EP6, 2, &syn6)), TC_ACT_OK);
    let ev = dp.events();
    assert_eq!(ev.iter().map(|e| e.hdr.ct_state).collect::<Vec<_>>(), vec![abi::CT_RELATED]);
    // Related packets leave the connection's counters alone.
    let ct6 = dp.maps.ct6_list().unwrap();
    assert_eq!((ct6[0].1.packets_fwd, ct6[0].1.packets_rev), (1, 0));
}

/// `Maps::identity_of` (what `bpf ipcache get` prints) against the datapath
/// itself: for each peer, a packet to the endpoint, and the identity the
/// datapath stamped on its event.
#[test]
fn identity_of_agrees_with_the_datapath() {
    use dpdbg::maps::IdentitySource;
    let mut dp = Dp::new(0);
    dp.maps.ipcache_upsert(IpAddr::from([203, 0, 113, 128]), 25, 6000).unwrap();
    let peers: Vec<(IpAddr, Vec<u8>, u32, IdentitySource)> = vec![
        (
            IpAddr::from([203, 0, 113, 20]),
            tcp4([203, 0, 113, 20], EP4, 40000, 80, true, false),
            PEER_IDENTITY,
            IdentitySource::Ipcache { cidr: "203.0.113.0/24".into() },
        ),
        (
            IpAddr::from([203, 0, 113, 200]),
            tcp4([203, 0, 113, 200], EP4, 40001, 80, true, false),
            6000,
            IdentitySource::Ipcache { cidr: "203.0.113.128/25".into() },
        ),
        (
            IpAddr::from([198, 51, 100, 7]),
            tcp4([198, 51, 100, 7], EP4, 40002, 80, true, false),
            abi::IDENTITY_WORLD,
            IdentitySource::World,
        ),
        (
            IpAddr::from(PEER6),
            tcp6_syn(PEER6, EP6, 40003, 80),
            PEER_IDENTITY,
            IdentitySource::Ipcache { cidr: "2001:db8:0:1::/64".into() },
        ),
    ];
    for (ip, pkt, want, source) in peers {
        assert_eq!(dp.ingress(&pkt), TC_ACT_OK);
        let evs = dp.events();
        let ev = evs
            .iter()
            .find(|e| dpdbg::flow::decode_packet(&e.data).src_ip == Some(ip))
            .unwrap_or_else(|| panic!("no event for {ip}"));
        let got = dp.maps.identity_of(ip).unwrap();
        assert_eq!(ev.hdr.src_identity, want, "the datapath's identity for {ip}");
        assert_eq!(got.identity, ev.hdr.src_identity, "identity_of({ip}) agrees with the datapath");
        assert_eq!(got.source, source, "{ip}");
    }
    let own = dp.maps.identity_of(IpAddr::from(EP4)).unwrap();
    assert_eq!(
        (own.identity, own.source),
        (EP_IDENTITY, IdentitySource::Endpoint { endpoint_id: EP_ID, ifindex: LO }),
        "an endpoint's address is the endpoint's, before any prefix"
    );
}

/// A datapath that sends an event for every packet (aggregation none) from
/// the endpoint EP4, its maps, its from-endpoint program and a reader of its ring.
fn every_packet_an_event(fs: &TestBpffs) -> (Maps, SchedClassifier, EventReader) {
    let settings = Settings { aggregation: datapath::Aggregation::None, ..Settings::default() };
    datapath::load(fs.path(), &settings).unwrap();
    let maps = Maps::open(fs.path()).unwrap();
    let info = EndpointInfo { endpoint_id: EP_ID, identity: EP_IDENTITY, ifindex: LO, mac: MAC_A, flags: 0 };
    maps.endpoint_upsert(IpAddr::from(EP4), info).unwrap();
    let from = SchedClassifier::from_pin(Pins::new(fs.path()).prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
    let reader = EventReader::open(fs.path(), Transport::Ringbuf).unwrap();
    (maps, from, reader)
}

/// The ring read in place (events::ring): every record the datapath wrote
/// arrives once, whole and in order, across many wraps of the ring. Records
/// are 304 bytes with their header, which does not divide the ring's 4 MiB:
/// every wrap has a record straddling its end, read through the second
/// mapping of the data pages.
#[test]
fn the_ring_delivers_every_record_once_in_order_across_wraps() {
    let fs = TestBpffs::new();
    let (maps, from, mut reader) = every_packet_an_event(&fs);
    let (mut total, mut last_ts, mut bytes) = (0u64, 0u64, 0usize);
    for round in 0..160usize {
        let mut pkt = Vec::new();
        // 1 to 120 bytes of payload: captures of 43 to 162 bytes.
        let payload = vec![round as u8; 1 + round * 37 % 120];
        PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(EP4, PEER4, 64).udp(4000, 53).write(&mut pkt, &payload).unwrap();
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&pkt);
        opts.repeat = 500;
        from.test_run(opts).unwrap();
        let mut got = 0;
        reader.drain(|rec| {
            let e = dpdbg::events::view(rec).expect("a whole record");
            assert_eq!(e.hdr.orig_len as usize, pkt.len(), "round {round}");
            assert_eq!(e.data, &pkt[..e.hdr.cap_len as usize], "round {round}: the packet as sent");
            assert!(e.hdr.timestamp_ns >= last_ts, "round {round}: in order");
            last_ts = e.hdr.timestamp_ns;
            bytes += rec.len();
            got += 1;
        });
        assert_eq!(got, 500, "round {round}: every record of the round, once");
        total += got as u64;
    }
    let lost: u64 =
        maps.metrics().unwrap().iter().filter(|m| m.reason == Reason::EVENT_LOST.0).map(|m| m.packets).sum();
    assert_eq!(lost, 0);
    assert_eq!(total, 80_000);
    assert!(bytes > 3 * (4 << 20), "the ring wrapped several times: {bytes} bytes");
}

/// A reader that has emptied a busy ring lets records gather before it
/// looks again (events::COALESCE): the ring's producer wakes a caught-up
/// reader at every record it commits, and those wake-ups, not the reading,
/// were what a fast reader cost the datapath (a 4.3 M events/s producer
/// slowed to 1 M/s). Records come here one BPF_PROG_TEST_RUN at a time, a
/// few microseconds apart, from another thread: a reader that drained each
/// as it came took them in drains of one or two.
#[test]
fn a_reader_of_a_busy_ring_takes_records_in_batches_not_one_wake_up_each() {
    let fs = TestBpffs::new();
    let (_maps, from, mut reader) = every_packet_an_event(&fs);
    const RECORDS: u64 = 20_000;
    let generator = std::thread::spawn(move || {
        let mut pkt = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(EP4, PEER4, 64).udp(4000, 53).write(&mut pkt, &[0; 8]).unwrap();
        for _ in 0..RECORDS {
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(&pkt);
            from.test_run(opts).unwrap();
        }
    });
    let (mut got, mut drains) = (0u64, 0u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got < RECORDS && std::time::Instant::now() < deadline {
        reader.wait(Duration::from_millis(100)).unwrap();
        let n = reader.drain(|_| {}) as u64;
        got += n;
        drains += (n > 0) as u64;
    }
    generator.join().unwrap();
    assert_eq!(got, RECORDS, "every record arrives");
    assert!(
        drains * 16 <= RECORDS,
        "{RECORDS} records took {drains} drains ({:.1} records each): the reader was woken for nearly every record",
        RECORDS as f64 / drains as f64
    );
}

/// Runs `pkt` as if it came through interface `ifindex` (the __sk_buff's
/// ifindex, which BPF_PROG_TEST_RUN takes for an existing device).
fn run_on(prog: &SchedClassifier, pkt: &[u8], ifindex: u32) -> u32 {
    let mut ctx = [0u8; 44];
    ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(pkt);
    opts.ctx_in = Some(&ctx);
    prog.test_run(opts).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on ifindex {ifindex}: {e}")).return_value
}

/// Replies look up their reverse tuple first (the short way, a lookup
/// fewer), but when the packet's own tuple has an entry as well the
/// datapath answers as it always did: the packet's own entry wins. Both
/// entries can exist only when one was opened over another interface's
/// entry; both are then marked twins, and the short way is not taken.
#[test]
fn a_reply_whose_own_tuple_is_tracked_keeps_its_own_entry() {
    // Another interface (a veth of the test's own) for the endpoint to have been on.
    let veth = common::Veth::new();
    let other = dpdbg::sys::ifindex(&veth.host).unwrap();
    let mut dp = Dp::new(0);
    let ep4 = IpAddr::from(EP4);
    let moved = |ifindex| EndpointInfo { endpoint_id: EP_ID, identity: EP_IDENTITY, ifindex, mac: MAC_A, flags: 0 };

    // The endpoint on the other interface opens EP:40000 -> PEER:80.
    dp.maps.endpoint_upsert(ep4, moved(other)).unwrap();
    assert_eq!(run_on(&dp.from, &tcp4(EP4, PEER4, 40000, 80, true, false), other), TC_ACT_OK);
    // It moves here; the peer opens PEER:80 -> EP:40000 towards it, over
    // the old interface's entry of the reverse tuple.
    dp.maps.endpoint_upsert(ep4, moved(LO)).unwrap();
    assert_eq!(dp.ingress(&tcp4(PEER4, EP4, 80, 40000, true, false)), TC_ACT_OK);
    // The endpoint's SYN again, here: its entry is re-made on this interface.
    assert_eq!(dp.egress(&tcp4(EP4, PEER4, 40000, 80, true, false)), TC_ACT_OK);

    let entries = |dp: &Dp| {
        let mut ct = dp.maps.ct4_list().unwrap();
        ct.sort_by_key(|(k, _)| k.direction);
        ct
    };
    let ct = entries(&dp);
    assert_eq!(ct.len(), 2, "{ct:?}");
    for (k, e) in &ct {
        assert_eq!(e.ifindex, LO, "{k:?}");
        assert!(e.flags & abi::CT_F_TWIN != 0, "both entries are marked twins: {k:?} {e:?}");
    }
    let (ingress_fwd, egress_rev) = (ct[0].1.packets_fwd, ct[1].1.packets_rev);
    let _ = dp.events();

    // From the lower port to the higher: the short way would take the
    // egress entry's reverse; the packet's own (ingress) entry wins.
    assert_eq!(dp.ingress(&tcp4(PEER4, EP4, 80, 40000, false, true)), TC_ACT_OK);
    let ct = entries(&dp);
    assert_eq!(ct[0].0.direction, abi::DIR_INGRESS);
    assert_eq!(ct[0].1.packets_fwd, ingress_fwd + 1, "accounted on its own entry");
    assert_eq!(ct[1].1.packets_rev, egress_rev, "not on the reverse one");
    let ev = dp.events();
    let states: Vec<u8> = ev.iter().map(|e| e.hdr.ct_state).collect();
    assert_eq!(states, vec![abi::CT_ESTABLISHED], "its new ACK is traced as its own connection's");
    assert_eq!(dpdbg::maps::ct::flag_names(abi::CT_F_TWIN), vec!["twin"]);
}
