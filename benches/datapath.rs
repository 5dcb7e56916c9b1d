//! Datapath cost per packet under BPF_PROG_TEST_RUN against an empty tc
//! program, measured in the same run: an established IPv4 TCP packet, its
//! reply direction, an established IPv6 packet, and ARP (passed and
//! counted). Needs root. With DPDBG_BENCH_BASELINE set to other builds'
//! datapath.o files (colon-separated), they are measured in the same rounds.

use std::net::IpAddr;

use aya::EbpfLoader;
use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use dpdbg::abi::{self, EndpointInfo, PolicyKey};
use dpdbg::datapath::{self, Pins, Settings};
use dpdbg::maps::Maps;
use etherparse::PacketBuilder;

const REPEAT: u32 = 1_000_000;
/// Rounds; in each, every program runs once, so a noisy moment of the VM
/// hits all of them alike. The best round of each is reported.
/// DPDBG_BENCH_ROUNDS asks for more on a busy machine.
const ROUNDS: usize = 12;

fn rounds() -> usize {
    std::env::var("DPDBG_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(ROUNDS)
}

fn run_once(prog: &SchedClassifier, pkt: &[u8]) -> f64 {
    let mut o = TestRunOptions::new();
    o.data_in = Some(pkt);
    o.repeat = REPEAT;
    let r = prog.test_run(o).expect("test run");
    assert_eq!(r.return_value, 0, "the benchmark's packets are all forwarded");
    r.duration.as_nanos() as f64
}

fn main() {
    let mut dirs = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut dirs)));
    for d in &dirs {
        let _ = datapath::unload(d);
        let _ = dpdbg::sys::unmount(d);
    }
    result.unwrap();
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const EP4: [u8; 4] = [192, 0, 2, 1];
const PEER4: [u8; 4] = [198, 51, 100, 7];
const EP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const PEER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 7];

fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let b = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let t = b.tcp(sport, dport, 1, 1024);
    let mut out = Vec::new();
    if syn { t.syn().write(&mut out, &[]) } else { t.ack(1).write(&mut out, &[0u8; 64]) }.unwrap();
    out
}

/// A datapath built from `object`, loaded on a bpffs of its own, with the
/// endpoint, the rule and the connections the packets belong to.
fn datapath_under_test(
    dirs: &mut Vec<std::path::PathBuf>,
    object: &[u8],
) -> (SchedClassifier, SchedClassifier, String) {
    let dir = tempfile::tempdir().unwrap().keep();
    dpdbg::sys::mount_bpffs(&dir).expect("mount bpffs (run as root)");
    dirs.push(dir.clone());
    let bpffs = dir.as_path();
    datapath::load_object(bpffs, &Settings::default(), object).unwrap();
    let clock = datapath::clock_source(bpffs).unwrap();
    let pins = Pins::new(bpffs);
    let from = SchedClassifier::from_pin(pins.prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
    let to = SchedClassifier::from_pin(pins.prog(datapath::PROG_TO_ENDPOINT)).unwrap();
    let maps = Maps::open(bpffs).unwrap();
    let ep = EndpointInfo { endpoint_id: 1, identity: 1000, ifindex: 1, mac: MAC_A, flags: abi::EP_ENFORCE_EGRESS };
    maps.endpoint_upsert(IpAddr::from(EP4), ep).unwrap();
    maps.endpoint_upsert(IpAddr::from(EP6), ep).unwrap();
    maps.policy_add(
        PolicyKey { endpoint_id: 1, identity: 0, dport: 80, proto: 6, direction: abi::DIR_EGRESS },
        abi::POLICY_ALLOW,
    )
    .unwrap();
    let (ep4, peer4, ep6, peer6) = (IpAddr::from(EP4), IpAddr::from(PEER4), IpAddr::from(EP6), IpAddr::from(PEER6));
    // The SYNs open the connections; every run after is the tracked path.
    for syn in [tcp(ep4, peer4, 40000, 80, true), tcp(ep6, peer6, 40000, 80, true)] {
        let mut o = TestRunOptions::new();
        o.data_in = Some(&syn);
        assert_eq!(from.test_run(o).unwrap().return_value, 0);
    }
    (from, to, clock.to_string())
}

/// `DPDBG_BENCH_BASELINE=path/to/datapath.o` also measures that build (an
/// earlier commit's, say) in the same rounds, for before/after figures
/// that the VM's moods cannot skew.
fn run(dirs: &mut Vec<std::path::PathBuf>) {
    let (from, to, clock) = datapath_under_test(dirs, dpdbg::DATAPATH_OBJECT);
    // Colon-separated: each build is measured beside this one.
    let baselines: Vec<(String, SchedClassifier, SchedClassifier)> = std::env::var("DPDBG_BENCH_BASELINE")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let obj = std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let (f, t, _) = datapath_under_test(dirs, &obj);
            (p.to_string(), f, t)
        })
        .collect();

    let mut obj = EbpfLoader::new().load(dpdbg::DATAPATH_OBJECT).unwrap();
    let empty: &mut SchedClassifier = obj.program_mut("empty_prog").unwrap().try_into().unwrap();
    empty.load().unwrap();

    let (ep4, peer4, ep6, peer6) = (IpAddr::from(EP4), IpAddr::from(PEER4), IpAddr::from(EP6), IpAddr::from(PEER6));
    let est4 = tcp(ep4, peer4, 40000, 80, false);
    let reply4 = tcp(peer4, ep4, 80, 40000, false);
    let est6 = tcp(ep6, peer6, 40000, 80, false);
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);

    let names = [
        "empty tc program",
        "from_endpoint, established IPv4 TCP",
        "to_endpoint, reply IPv4 TCP",
        "from_endpoint, established IPv6 TCP",
        "from_endpoint, ARP (passed)",
    ];
    let mut cases: Vec<(&SchedClassifier, &[u8])> =
        vec![(&*empty, &est4), (&from, &est4), (&to, &reply4), (&from, &est6), (&from, &arp)];
    for (_, f, t) in &baselines {
        cases.extend([(f, &est4[..]), (t, &reply4[..]), (f, &est6[..]), (f, &arp[..])]);
    }
    let mut best = vec![f64::MAX; cases.len()];
    let rounds = rounds();
    for _ in 0..rounds {
        for (i, (prog, pkt)) in cases.iter().enumerate() {
            best[i] = best[i].min(run_once(prog, pkt));
        }
    }
    let empty_ns = best[0];
    println!("datapath, BPF_PROG_TEST_RUN x{REPEAT}, best of {rounds} interleaved rounds (clock: {clock}):");
    for (i, name) in names.iter().enumerate() {
        if i == 0 {
            println!("  {name:<38} {:7.1} ns/packet", best[i]);
            continue;
        }
        print!("  {name:<38} {:7.1} ns/packet  ({:.2}x empty)", best[i], best[i] / empty_ns);
        for b in 0..baselines.len() {
            let ns = best[names.len() + b * (names.len() - 1) + i - 1];
            print!("   [{b}] {ns:5.1} ns ({:.2}x, {:+.1} ns)", ns / empty_ns, best[i] - ns);
        }
        println!();
    }
    for (b, (path, _, _)) in baselines.iter().enumerate() {
        println!("  [{b}] {path}, measured in the same rounds (+: this build is slower)");
    }
}
