//! A conntrack table of 1,000,000 entries, dumped as JSON by dpdbg (typed
//! `bpf ct list` and generic `map dump`) and by `bpftool -j map dump`, in the
//! same run; prints times, ratios and the peak memory of each. Needs root.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dpdbg::abi::Ct4Key;
use dpdbg::datapath::{self, Settings};
use dpdbg::maps::any::{AnyMap, MapSpec};

mod common;

const N: usize = 1_000_000;

/// Runs a command with stdout to /dev/null; returns wall time and peak RSS
/// (KiB). The peak is polled from /proc/PID/status (VmHWM of the exec'd
/// image): wait4's ru_maxrss would include this bench's own memory, which
/// the child inherits at fork.
fn measure(cmd: &mut Command) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{cmd:?} failed: {st}");
            break;
        }
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak = kb;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (start.elapsed(), peak)
}

/// The table `fill` writes: entries long expired, as a big idle table is.
fn fill(bpffs: &Path, n: usize) {
    common::fill_ct4(bpffs, n, 0, 2, 60);
}

/// Changes the counters of the first `n` entries `fill` made.
fn fill_changed(bpffs: &Path, n: usize, round: u64) {
    common::fill_ct4(bpffs, n, round, 2, 60);
}

fn main() {
    common::with_bpffs(run);
}

fn run(bpffs: &Path) {
    // Room to spare so the LRU does not evict while we fill.
    let settings = Settings { max_entries: vec![("ct4".into(), 1_300_000)], ..Settings::default() };
    datapath::load(bpffs, &settings).unwrap();
    let exe = env!("CARGO_BIN_EXE_dpdbg");
    let pin = bpffs.join("dpdbg/maps/ct4");

    fill(bpffs, N / 10);
    let (_, rss_small) =
        measure(Command::new(exe).arg("--bpffs").arg(bpffs).args(["map", "dump", "ct4", "-o", "json"]));
    fill(bpffs, N);
    let count = AnyMap::open(&MapSpec::Path(pin.clone()), bpffs).unwrap().count().unwrap();
    assert_eq!(count as usize, N, "the table holds every entry");

    let best = |args: &[&str]| {
        (0..3).map(|_| measure(Command::new(exe).arg("--bpffs").arg(bpffs).args(args))).min_by_key(|(d, _)| *d).unwrap()
    };
    let (ct_t, ct_rss) = best(&["bpf", "ct", "list", "--ipv4", "-o", "json"]);
    let (dump_t, dump_rss) = best(&["map", "dump", "ct4", "-o", "json"]);
    let (bt_t, bt_rss) = measure(Command::new("bpftool").args(["-j", "map", "dump", "pinned"]).arg(&pin));

    println!("JSON dump of a {N}-entry conntrack map (16 B keys, 64 B values), stdout to /dev/null:");
    println!("  bpftool -j map dump         {:>7.2} s  peak RSS {:>7} KiB", bt_t.as_secs_f64(), bt_rss);
    println!(
        "  dpdbg bpf ct list -o json   {:>7.2} s  peak RSS {:>7} KiB  {:>5.1}x faster than bpftool",
        ct_t.as_secs_f64(),
        ct_rss,
        bt_t.as_secs_f64() / ct_t.as_secs_f64()
    );
    println!(
        "  dpdbg map dump ct4 -o json  {:>7.2} s  peak RSS {:>7} KiB  {:>5.1}x faster than bpftool",
        dump_t.as_secs_f64(),
        dump_rss,
        bt_t.as_secs_f64() / dump_t.as_secs_f64()
    );
    println!("  dpdbg map dump peak RSS at {} entries: {rss_small} KiB, at {N}: {dump_rss} KiB (streamed)", N / 10);

    // map watch: one interval (read again, diff against the last read) on
    // the full table with 1,000 entries changed, against the raw batch read
    // of the same table; best of 3 each, interleaved.
    let mut w = dpdbg::maps::watch::Watch::new(MapSpec::Path(pin.clone()), bpffs).unwrap();
    let raw_map = AnyMap::open(&MapSpec::Path(pin.clone()), bpffs).unwrap();
    let (mut raw_best, mut tick_best) = (Duration::MAX, Duration::MAX);
    for round in 0..3 {
        let t = Instant::now();
        let mut n = 0;
        raw_map
            .for_each_batch(|_, _, c| {
                n += c;
                Ok(())
            })
            .unwrap();
        raw_best = raw_best.min(t.elapsed());
        assert_eq!(n, N);
        fill_changed(bpffs, 1000, round as u64 + 1);
        let t = Instant::now();
        let mut changed = 0;
        let tick = w.tick(|_| changed += 1).unwrap();
        tick_best = tick_best.min(t.elapsed());
        assert_eq!((tick.changed, tick.added, tick.removed, changed), (1000, 0, 0, 1000), "{tick:?}");
    }
    println!("dpdbg map watch, one interval on the {N}-entry map with 1,000 entries changed:");
    println!("  raw batch read (BPF_MAP_LOOKUP_BATCH)  {:>7.3} s", raw_best.as_secs_f64());
    println!(
        "  map watch interval (read + diff)       {:>7.3} s  {:>5.2}x the raw read (target <= 2x)",
        tick_best.as_secs_f64(),
        tick_best.as_secs_f64() / raw_best.as_secs_f64()
    );

    // Flush: batched deletes (what `bpf ct flush` does) against deleting the
    // same keys one at a time, both after reading them in batches.
    let t = Instant::now();
    let flushed = dpdbg::maps::ct::flush(bpffs).unwrap();
    let batch_t = t.elapsed();
    assert_eq!(flushed as usize, N);
    fill(bpffs, N);
    let m = AnyMap::open(&MapSpec::Path(pin.clone()), bpffs).unwrap();
    let t = Instant::now();
    let mut keys = Vec::with_capacity(N * std::mem::size_of::<Ct4Key>());
    m.for_each_batch(|k, _, _| {
        keys.extend_from_slice(k);
        Ok(())
    })
    .unwrap();
    let mut one_by_one = 0;
    for k in keys.chunks(std::mem::size_of::<Ct4Key>()) {
        one_by_one += m.delete(k).unwrap() as usize;
    }
    let single_t = t.elapsed();
    assert_eq!(one_by_one, N);
    println!("Flush of the {N}-entry conntrack map:");
    println!("  one bpf_map_delete_elem per key   {:>7.2} s", single_t.as_secs_f64());
    println!(
        "  dpdbg bpf ct flush (batched)      {:>7.2} s  {:>5.1}x faster",
        batch_t.as_secs_f64(),
        single_t.as_secs_f64() / batch_t.as_secs_f64()
    );
}
