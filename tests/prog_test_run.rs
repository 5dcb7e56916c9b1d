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
use dpdbg::maps::Maps;
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
        self.maps.policy_upsert(key, action).unwrap();
    }

    fn _keep(&self) -> &TestBpffs {
        &self.fs
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
    assert_eq!(e.lifetime_s, 21600, "established TCP");

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
fn lookup_order_and_deny() {
    let mut dp = Dp::new(abi::EP_ENFORCE_EGRESS | abi::EP_ENFORCE_INGRESS);
    // L3-L4 allow beats an L3-only deny for the same peer: the more specific level is looked up first.
    dp.rule(PEER_IDENTITY, 443, 6, abi::DIR_EGRESS, abi::POLICY_ALLOW);
    dp.rule(PEER_IDENTITY, 0, 0, abi::DIR_EGRESS, abi::POLICY_DENY);
    assert_eq!(dp.egress(&tcp4(EP4, PEER4, 40001, 443, true, false)), TC_ACT_OK);
    assert_eq!(dp.egress(&tcp4(EP4, PEER4, 40002, 22, true, false)), TC_ACT_SHOT, "L3-only deny");
    // "all" rule (any peer, any port) allows ingress; nothing matches egress to the world.
    dp.rule(abi::IDENTITY_ANY, 0, 0, abi::DIR_INGRESS, abi::POLICY_ALLOW);
    assert_eq!(dp.ingress(&udp4(PEER4, EP4, 5000, 53)), TC_ACT_OK);
    assert_eq!(dp.egress(&udp4(EP4, [8, 8, 8, 8], 5001, 53)), TC_ACT_SHOT, "no rule: default deny");

    let ev = dp.events();
    let verdicts: Vec<_> = ev
        .iter()
        .filter(|e| e.hdr.r#type == abi::EVENT_POLICY_VERDICT)
        .map(|e| (e.hdr.subtype, e.hdr.verdict))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (abi::MATCH_L3_L4, abi::VERDICT_FORWARDED),
            (abi::MATCH_L3_ONLY, abi::VERDICT_DROPPED),
            (abi::MATCH_ALL, abi::VERDICT_FORWARDED),
            (abi::MATCH_NONE, abi::VERDICT_DROPPED),
        ]
    );
    let drops: Vec<_> = ev.iter().filter(|e| e.hdr.r#type == abi::EVENT_DROP).map(|e| e.hdr.subtype).collect();
    assert_eq!(drops, vec![Reason::POLICY_DENYLIST.0, Reason::POLICY_DENIED.0]);
    let world = ev.iter().rev().find(|e| e.hdr.r#type == abi::EVENT_DROP).unwrap();
    assert_eq!(world.hdr.dst_identity, abi::IDENTITY_WORLD, "an address nobody knows is world");
    assert_eq!(dp.metric(Reason::POLICY_DENYLIST, "egress"), 1);
    assert_eq!(dp.metric(Reason::POLICY_DENIED, "egress"), 1);
    assert_eq!(dp.maps.ct4_list().unwrap().len(), 2, "only allowed connections enter conntrack");
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

    // GRE (47) passes and is counted.
    let mut gre = udp4(EP4, PEER4, 1, 2);
    gre[14 + 9] = 47;
    assert_eq!(dp.egress(&gre), TC_ACT_OK);
    assert_eq!(dp.metric(Reason::PASS_OTHER_L4, "egress"), 1);

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
