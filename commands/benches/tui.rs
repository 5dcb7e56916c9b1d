//! What `dpdbg tui` costs to leave running: its CPU per second of wall time
//! at the default 1 s refresh, on a datapath holding 10,000 conntrack
//! entries and producing a steady stream of drop events, in a real terminal
//! (tmux), on every view, against bpftop (Netflix/bpftop, the program view
//! an operator would leave running instead) on the same node in the same
//! rounds when DPDBG_BPFTOP names a bpftop built from its source. Also what
//! one `dpdbg bpf ct list -o json` of the same table costs.
//! DPDBG_BENCH_BASELINE_BIN names another dpdbg (the build before a change)
//! to measure in the same rounds. Needs root and tmux.

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
/// Each view's window in a round (DPDBG_BENCH_WINDOW=seconds for another).
const WINDOW: Duration = Duration::from_secs(10);
/// Rounds of every view and bpftop in turns: the figures are their medians.
const ROUNDS: usize = 3;
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

/// The views, by the key that shows each.
const VIEWS: [(&str, &str); 6] =
    [("Overview", "1"), ("Endpoints", "2"), ("Policy", "3"), ("Conntrack", "4"), ("Drops", "5"), ("Programs", "6")];

/// A program running in a tmux session of its own (200x50), and its pid.
struct Session {
    name: String,
    pid: u32,
}

impl Session {
    fn start(what: &str, cmd: &str) -> Session {
        let name = format!("dpdbg-tui-bench-{}-{what}", std::process::id());
        tmux(&["new-session", "-d", "-s", &name, "-x", "200", "-y", "50", cmd]);
        let pid: u32 = tmux(&["display-message", "-p", "-t", &name, "#{pane_pid}"]).trim().parse().unwrap();
        // Started, its first reads done.
        std::thread::sleep(Duration::from_secs(2));
        Session { name, pid }
    }

    /// The session's CPU over `window`, as a percentage of one core.
    fn cpu(&self, window: Duration) -> f64 {
        let (c0, t0) = (common::cpu_ns(self.pid), Instant::now());
        std::thread::sleep(window);
        (common::cpu_ns(self.pid) - c0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0
    }

    fn keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.name, keys]);
        // The view's first refresh (the Programs view asks for one at once).
        std::thread::sleep(Duration::from_millis(1500));
    }

    fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).output();
    }
}

/// A dashboard's CPU on each view in turn, `window` each.
fn dashboard(bin: &str, bpffs: &Path, window: Duration) -> Vec<f64> {
    let s = Session::start("dpdbg", &format!("exec {bin} --bpffs {} tui", bpffs.display()));
    VIEWS
        .iter()
        .map(|(title, key)| {
            s.keys(key);
            let pct = s.cpu(window);
            let screen = s.screen();
            assert!(screen.contains("dpdbg") && screen.contains(title), "{bin} shows the {title} view:\n{screen}");
            pct
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
    // bpftop (Netflix/bpftop), built by hand from its source: its path here.
    let bpftop = std::env::var("DPDBG_BPFTOP").ok().filter(|p| !p.is_empty());
    // Another dpdbg build (the commit before a change) measured in the same rounds.
    let before = std::env::var("DPDBG_BENCH_BASELINE_BIN").ok().filter(|p| !p.is_empty());
    let window = Duration::from_secs(
        std::env::var("DPDBG_BENCH_WINDOW").ok().and_then(|w| w.parse().ok()).unwrap_or(WINDOW.as_secs()),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let g = generator(bpffs, Arc::clone(&stop));
    // In turns, so the machine's load moves all of them alike.
    let (mut ours, mut theirs, mut base) = (vec![vec![]; VIEWS.len()], vec![], vec![vec![]; VIEWS.len()]);
    for _ in 0..ROUNDS {
        for (i, p) in dashboard(env!("CARGO_BIN_EXE_dpdbg"), bpffs, window).into_iter().enumerate() {
            ours[i].push(p);
        }
        if let Some(bin) = &before {
            for (i, p) in dashboard(bin, bpffs, window).into_iter().enumerate() {
                base[i].push(p);
            }
        }
        if let Some(b) = &bpftop {
            let s = Session::start("bpftop", &format!("exec {b}"));
            theirs.push(s.cpu(window));
            assert!(s.screen().contains("eBPF programs"), "bpftop ran:\n{}", s.screen());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = g.join().unwrap();
    println!(
        "dpdbg tui, default 1 s refresh, {ENTRIES} conntrack entries, ~{EVENTS_PER_S} drop events/s ({sent} sent), in tmux, {ROUNDS} rounds of {}s per view (medians, % of one core):",
        window.as_secs()
    );
    let bpftop_pct = (!theirs.is_empty()).then(|| median(theirs.clone()));
    match bpftop_pct {
        Some(b) => println!("  bpftop (programs only)   {b:>5.2} %  (rounds {theirs:.2?})"),
        None => println!("  bpftop: not given (DPDBG_BPFTOP=path of a bpftop built from its source)"),
    }
    for (i, (title, _)) in VIEWS.iter().enumerate() {
        let m = median(ours[i].clone());
        let ratio = bpftop_pct.map_or(String::new(), |b| format!(", {:.2}x bpftop (target <= 1x)", m / b.max(1e-9)));
        let was =
            if base[i].is_empty() { String::new() } else { format!(", before: {:.2} %", median(base[i].clone())) };
        println!("  {title:<24} {m:>5.2} %{ratio}{was}  (rounds {:.2?})", ours[i]);
    }
    println!(
        "  one `dpdbg bpf ct list -o json` of the same table: {:.1} ms, {:.2} % of a core if run every second",
        list.as_secs_f64() * 1e3,
        list.as_secs_f64() * 100.0
    );
}
