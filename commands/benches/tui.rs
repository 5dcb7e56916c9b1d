//! What `dpdbg tui` costs to leave running: its CPU per second of wall time
//! at the default 1 s refresh, on a datapath holding 10,000 conntrack
//! entries and producing a steady stream of drop events, in a real terminal
//! (tmux), on the Overview and on the Conntrack view. Beside it, in the same
//! run, what one `dpdbg bpf ct list -o json` of the same table costs, the
//! read every refresh must at least do. Needs root and tmux.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use dpdbg::abi::EndpointInfo;
use dpdbg::datapath::{self, Aggregation, Pins, Settings};
use dpdbg::maps::Maps;
use etherparse::PacketBuilder;

mod common;

const ENTRIES: u32 = 10_000;
const WINDOW: Duration = Duration::from_secs(10);
/// Drop events per second from the generator.
const EVENTS_PER_S: u32 = 2_000;

/// ENTRIES live conntrack entries, seen just now and good for six hours.
fn fill(bpffs: &Path) {
    common::fill_ct4(bpffs, ENTRIES as usize, 0, dpdbg::sys::monotonic_coarse_ns(), 21600);
}

/// Sends packets the enforcing endpoint drops, EVENTS_PER_S a second, until stopped.
fn generator(bpffs: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let prog = SchedClassifier::from_pin(Pins::new(bpffs).prog(datapath::PROG_TO_ENDPOINT)).unwrap();
    let mut pkt = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([203, 0, 113, 9], [192, 0, 2, 1], 64)
        .udp(4000, 53)
        .write(&mut pkt, &[0u8; 32])
        .unwrap();
    std::thread::spawn(move || {
        let mut sent = 0u64;
        let tick = Duration::from_millis(50);
        let per_tick = EVENTS_PER_S / 20;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let mut o = TestRunOptions::new();
            o.data_in = Some(&pkt);
            o.repeat = per_tick;
            prog.test_run(o).unwrap();
            sent += per_tick as u64;
            std::thread::sleep(tick.saturating_sub(t.elapsed()));
        }
        sent
    })
}

fn tmux(args: &[&str]) -> String {
    let o = Command::new("tmux").args(args).env("TERM", "xterm-256color").output().expect("tmux");
    assert!(o.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The dashboard's CPU, as a percentage of one core, over WINDOW on `view`.
fn dashboard(bpffs: &Path, view: &str) -> f64 {
    let name = format!("dpdbg-tui-bench-{}", std::process::id());
    let cmd = format!("exec {} --bpffs {} tui", env!("CARGO_BIN_EXE_dpdbg"), bpffs.display());
    tmux(&["new-session", "-d", "-s", &name, "-x", "200", "-y", "50", &cmd]);
    let pid: u32 = tmux(&["display-message", "-p", "-t", &name, "#{pane_pid}"]).trim().parse().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    tmux(&["send-keys", "-t", &name, view]);
    std::thread::sleep(Duration::from_secs(2));
    let (c0, t0) = (common::cpu_ns(pid), Instant::now());
    std::thread::sleep(WINDOW);
    let pct = (common::cpu_ns(pid) - c0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0;
    let screen = tmux(&["capture-pane", "-p", "-t", &name]);
    let _ = tmux(&["kill-session", "-t", &name]);
    assert!(screen.contains("dpdbg"), "the dashboard ran:\n{screen}");
    pct
}

fn main() {
    common::with_bpffs(run);
}

fn run(bpffs: &Path) {
    datapath::load(bpffs, &Settings { aggregation: Aggregation::None, ..Settings::default() }).unwrap();
    let maps = Maps::open(bpffs).unwrap();
    // An endpoint that enforces ingress with no rule: every packet to it is a drop event.
    let ep = EndpointInfo {
        endpoint_id: 1,
        identity: 1000,
        ifindex: 1,
        mac: [2, 0, 0, 0, 0, 1],
        flags: dpdbg::abi::EP_ENFORCE_INGRESS,
    };
    maps.endpoint_upsert(IpAddr::from([192, 0, 2, 1]), ep).unwrap();
    fill(bpffs);
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(bpffs)
        .args(["bpf", "ct", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let list = t.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let g = generator(bpffs, Arc::clone(&stop));
    let overview = dashboard(bpffs, "1");
    let conntrack = dashboard(bpffs, "4");
    stop.store(true, Ordering::Relaxed);
    let sent = g.join().unwrap();
    println!(
        "dpdbg tui, default 1 s refresh, {ENTRIES} conntrack entries, ~{EVENTS_PER_S} drop events/s ({sent} sent), {}s each:",
        WINDOW.as_secs()
    );
    println!("  Overview view    {overview:.2} % of one core (target <= 2 %)");
    println!("  Conntrack view   {conntrack:.2} % of one core (target <= 2 %)");
    println!(
        "  one `dpdbg bpf ct list -o json` of the same table: {:.1} ms, {:.2} % of a core if run every second",
        list.as_secs_f64() * 1e3,
        list.as_secs_f64() * 100.0
    );
}
