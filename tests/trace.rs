//! `dpdbg trace` against the real thing: for a table of packets, what the
//! dry run predicts is what the same packet, sent for real in the lab, then
//! gets (the events the datapath sends: type, reason, verdict, conntrack
//! state, endpoint, identities); and a trace leaves every map as it was and
//! sends no event.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

use dpdbg::abi::{self, EventHdr, PolicyKey};
use dpdbg::datapath::{self, Aggregation, Settings, Transport};
use dpdbg::events::{Event, EventReader};
use dpdbg::lab::{Lab, LabEndpoint, LabOptions, in_netns};
use dpdbg::maps::any::{AnyMap, MapSpec};
use dpdbg::trace::{self, Peer, Proto, Report, Request};

/// Type, subtype, verdict, ct state, direction, ifindex, endpoint, source
/// and destination identity, flags: what an event says the datapath decided.
type Decided = (u8, u8, u8, u8, u8, u32, u32, u32, u32, u8);
/// A map's entries, key and value bytes.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

const TCP: u8 = 6;
const UDP: u8 = 17;

fn rule(m: &dpdbg::maps::Maps, ep: u32, identity: u32, proto: u8, dport: u16, dir: u8, action: u8) {
    m.policy_add(PolicyKey { endpoint_id: ep, identity, dport, proto, direction: dir }, action).unwrap();
}

/// Every map a trace could write to, entry by entry (per-CPU values whole).
fn snapshot(bpffs: &std::path::Path) -> BTreeMap<String, Entries> {
    let mut out = BTreeMap::new();
    for name in ["endpoints", "ipcache", "policy", "ct4", "ct6", "frags", "metrics", "settings"] {
        let path = datapath::Pins::new(bpffs).map(name);
        let m = AnyMap::open(&MapSpec::Path(path), bpffs).unwrap();
        let mut entries = Vec::new();
        if name == "ipcache" {
            // LPM tries have no batch lookup: walk the keys.
            let l = dpdbg::maps::Maps::open(bpffs).unwrap().ipcache_list().unwrap();
            entries.extend(l.into_iter().map(|e| (e.cidr.into_bytes(), e.identity.to_ne_bytes().to_vec())));
        } else {
            let (ks, vs) = (m.info.key_size as usize, m.value_buf_size());
            m.for_each_batch(|keys, values, n| {
                for i in 0..n {
                    entries.push((keys[i * ks..(i + 1) * ks].to_vec(), values[i * vs..(i + 1) * vs].to_vec()));
                }
                Ok(())
            })
            .unwrap();
        }
        entries.sort();
        out.insert(name.to_string(), entries);
    }
    out
}

/// Runs of the live programs so far (statistics on): a live packet between
/// two snapshots changes maps without any trace being to blame.
fn live_runs(bpffs: &std::path::Path) -> u64 {
    let ids: Vec<u32> = datapath::status_brief(bpffs)
        .unwrap()
        .programs
        .iter()
        .filter(|p| p.name == datapath::PROG_FROM_ENDPOINT || p.name == datapath::PROG_TO_ENDPOINT)
        .map(|p| p.id)
        .collect();
    dpdbg::progs::list_totals().unwrap().iter().filter(|p| ids.contains(&p.id)).map(|p| p.run_count.unwrap_or(0)).sum()
}

/// What the test compares: every header field the datapath decides.
fn key(h: &EventHdr) -> Decided {
    (
        h.r#type,
        h.subtype,
        h.verdict,
        h.ct_state,
        h.direction,
        h.ifindex,
        h.endpoint_id,
        h.src_identity,
        h.dst_identity,
        h.flags,
    )
}

fn predicted(r: &Report) -> Vec<Decided> {
    r.hops.iter().flat_map(|h| h.events.iter().map(|e| key(&e.header))).collect()
}

/// Sends `frame` out of the endpoint's eth0, as its own stack would.
fn send(ep: &LabEndpoint, frame: Vec<u8>) {
    in_netns(&ep.netns, move || {
        // SAFETY: plain socket calls on a socket this closure owns.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&frame[..6]);
            let n = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            assert_eq!(n, frame.len() as isize, "sendto: {err}");
        }
    })
    .unwrap();
}

fn mac(s: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (b, p) in out.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap();
    }
    out
}

/// The events of the packet from `src` (and, for TCP/UDP, from `sport`
/// with these TCP flags), leaving out whatever the endpoints' stacks sent
/// in answer (a SYN-ACK, the RST to an unexpected one, ICMP errors).
fn events_of(ev: &[Event], src: IpAddr, sport: Option<u16>, flags: Option<u8>) -> Vec<Decided> {
    ev.iter()
        .filter(|e| {
            let p = dpdbg::flow::decode_packet(&e.data);
            p.src_ip == Some(src)
                && (sport.is_none() || p.src_port == sport)
                && (flags.is_none() || p.tcp_flags == flags)
        })
        .map(|e| key(&e.hdr))
        .collect()
}

struct Case {
    name: &'static str,
    from: usize,
    to: usize,
    proto: Proto,
    dport: u16,
    sport: u16,
    flags: u8,
    raw: Option<Vec<u8>>,
    /// The fate the table expects: trace and the real packet must both say it.
    verdict: &'static str,
    reason: u8,
}

fn case(
    name: &'static str,
    from: usize,
    to: usize,
    proto: Proto,
    dport: u16,
    verdict: &'static str,
    reason: u8,
) -> Case {
    Case { name, from, to, proto, dport, sport: 40000 + dport % 1000, flags: 0x02, raw: None, verdict, reason }
}

#[test]
fn trace_predicts_real_traffic_and_changes_nothing() {
    // Aggregation none: every forwarded packet sends a trace event, so the
    // real traffic shows its verdict and conntrack state for every case.
    let lab = Lab::up(&LabOptions {
        endpoints: 3,
        settings: Settings { aggregation: Aggregation::None, ..Settings::default() },
        ..LabOptions::default()
    })
    .unwrap();
    let bpffs = lab.bpffs().to_path_buf();
    let eps: Vec<LabEndpoint> = lab.endpoints().to_vec();
    let (e1, e2, e3) = (&eps[0], &eps[1], &eps[2]);
    let m = lab.maps().unwrap();
    let ing = abi::DIR_INGRESS;
    let (allow, deny) = (abi::POLICY_ALLOW, abi::POLICY_DENY);
    // ep2 ingress: a rule at each level, denies, and a deny over an allow.
    lab.set_enforcement(1, true, false).unwrap();
    rule(&m, e2.endpoint_id, e1.identity, TCP, 8080, ing, allow); // L3-L4 allow
    rule(&m, e2.endpoint_id, e3.identity, 0, 0, ing, allow); // L3-only allow
    rule(&m, e2.endpoint_id, 0, TCP, 9000, ing, allow); // L4-only allow
    rule(&m, e2.endpoint_id, e1.identity, TCP, 8081, ing, deny); // L3-L4 deny
    rule(&m, e2.endpoint_id, 0, UDP, 5353, ing, deny); // L4-only deny
    rule(&m, e2.endpoint_id, e3.identity, TCP, 7001, ing, deny); // overrides the L3-only allow
    // ep3 ingress: allow everything, except ep1 (an L3-only deny over the allow-all).
    lab.set_enforcement(2, true, false).unwrap();
    rule(&m, e3.endpoint_id, 0, 0, 0, ing, allow); // "all" allow
    rule(&m, e3.endpoint_id, e1.identity, 0, 0, ing, deny); // L3-only deny
    // ep1 ingress: deny everything new ("all" deny); replies still pass.
    lab.set_enforcement(0, true, false).unwrap();
    rule(&m, e1.endpoint_id, 0, 0, 0, ing, deny);

    // A connection ep1 -> ep2:8080 that stays open, for the reply case.
    let v4 = |e: &LabEndpoint| IpAddr::V4(e.ipv4);
    let listen_at = std::net::SocketAddr::new(v4(e2), 8080);
    let listener = in_netns(&e2.netns, move || TcpListener::bind(listen_at).unwrap()).unwrap();
    let client =
        in_netns(&e1.netns, move || TcpStream::connect_timeout(&listen_at, Duration::from_secs(2)).unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();

    let mut truncated_tcp = vec![0x45u8, 0, 0, 30, 0, 1, 0, 0, 64, 6, 0, 0];
    truncated_tcp.extend_from_slice(&e1.ipv4.octets());
    truncated_tcp.extend_from_slice(&e2.ipv4.octets());
    truncated_tcp.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 0, 0, 0]); // 10 of TCP's 20 bytes
    let mut short_ihl = truncated_tcp.clone();
    short_ihl[0] = 0x44; // a header length of 16 bytes: invalid

    let cases = vec![
        case("allowed at L3-L4", 0, 1, Proto::Tcp, 8080, "FORWARDED", 0),
        case("allowed at L3-only", 2, 1, Proto::Tcp, 7000, "FORWARDED", 0),
        case("allowed at L4-only", 0, 1, Proto::Tcp, 9000, "FORWARDED", 0),
        case("allowed by an allow-all", 1, 2, Proto::Tcp, 80, "FORWARDED", 0),
        case("denied at L3-L4", 0, 1, Proto::Tcp, 8081, "DROPPED", 181),
        case("denied at L3-only, over an allow-all", 0, 2, Proto::Tcp, 80, "DROPPED", 181),
        case("denied at L4-only", 0, 1, Proto::Udp, 5353, "DROPPED", 181),
        case("denied by a deny-all", 1, 0, Proto::Tcp, 22, "DROPPED", 181),
        case("deny overrides allow", 2, 1, Proto::Tcp, 7001, "DROPPED", 181),
        case("no rule under enforcement", 0, 1, Proto::Tcp, 7777, "DROPPED", 133),
        case("unknown IP protocol, no rule", 0, 1, Proto::Other(253), 0, "DROPPED", 133),
        case("unknown IP protocol, allowed by L3", 2, 1, Proto::Other(253), 0, "FORWARDED", 0),
        case("ICMP echo, no rule", 0, 1, Proto::Icmp, 0, "DROPPED", 133),
        Case {
            raw: Some(truncated_tcp),
            ..case("malformed: TCP header cut short", 0, 1, Proto::Tcp, 0, "DROPPED", 135)
        },
        Case { raw: Some(short_ihl), ..case("malformed: IPv4 header length 16", 0, 1, Proto::Tcp, 0, "DROPPED", 134) },
        Case {
            sport: 8080,
            flags: 0x18,
            ..case("reply of a tracked connection (through a deny-all)", 1, 0, Proto::Tcp, client_port, "FORWARDED", 0)
        },
    ];

    let mut reader = EventReader::open(&bpffs, Transport::Ringbuf).unwrap();
    let _stats = dpdbg::progs::enable_stats().unwrap();
    reader.collect_for(Duration::from_millis(300), Duration::from_secs(3)).unwrap();
    for c in &cases {
        let (a, b) = (&eps[c.from], &eps[c.to]);
        let req = Request {
            from: Peer::Endpoint(a.endpoint_id),
            to: Peer::Ip(v4(b)),
            proto: c.proto,
            sport: c.sport,
            dport: c.dport,
            tcp_flags: c.flags,
            family: Some(4),
            raw: c.raw.clone(),
        };

        // The trace: maps byte for byte the same unless a live packet ran
        // meanwhile (an endpoint's own IPv6 housekeeping), then try again.
        let mut report = None;
        for _ in 0..5 {
            let runs = live_runs(&bpffs);
            let before = snapshot(&bpffs);
            let r = trace::trace(&bpffs, &req).unwrap();
            let after = snapshot(&bpffs);
            if live_runs(&bpffs) != runs {
                continue;
            }
            for (name, entries) in &before {
                assert!(entries == &after[name], "{}: trace changed map {name}", c.name);
            }
            report = Some(r);
            break;
        }
        let report = report.unwrap_or_else(|| panic!("{}: live packets kept running during every try", c.name));
        let silent = reader.collect_for(Duration::from_millis(150), Duration::from_secs(1)).unwrap();
        let src = if c.raw.is_some() { v4(a) } else { report.packet.src };
        assert!(events_of(&silent, src, None, None).is_empty(), "{}: the trace sent events: {silent:?}", c.name);
        assert_eq!(
            (report.verdict, report.drop_reason.as_ref().map_or(0, |r| r.code)),
            (c.verdict, c.reason),
            "{}: trace says\n{report:#?}",
            c.name
        );

        // The same packet for real, from the sender's own interface.
        let frame = trace::frame(&req, report.packet.src, report.packet.dst, mac(&a.mac), mac(&a.host_mac)).unwrap();
        send(a, frame);
        let ev = reader.collect_for(Duration::from_millis(300), Duration::from_secs(3)).unwrap();
        let sport = matches!(c.proto, Proto::Tcp | Proto::Udp).then_some(c.sport).filter(|_| c.raw.is_none());
        let flags = (c.proto == Proto::Tcp && c.raw.is_none()).then_some(c.flags);
        let real = match &c.raw {
            // Malformed packets may not decode: match their bytes after Ethernet.
            Some(raw) => ev.iter().filter(|e| e.data.get(14..) == Some(&raw[..])).map(|e| key(&e.hdr)).collect(),
            None => events_of(&ev, src, sport, flags),
        };
        assert_eq!(real, predicted(&report), "{}: real events (left) vs trace (right); all events: {ev:#?}", c.name);
        assert!(!real.is_empty(), "{}: no events to compare", c.name);
    }
    drop(client);
}
