//! What the CLI benchmarks share: a private bpffs around a run, conntrack
//! tables written in batches, and CPU time read from /proc.
#![allow(dead_code)]

use std::path::Path;

use dpdbg::abi::{Ct4Key, CtEntry};
use dpdbg::maps::any::{AnyMap, MapSpec};

/// Mounts a bpffs in a temporary directory, runs `run` on it, and unloads
/// and unmounts afterwards, also when `run` panics.
pub fn with_bpffs(run: impl FnOnce(&Path) + std::panic::UnwindSafe) {
    let dir = tempfile::tempdir().unwrap();
    dpdbg::sys::mount_bpffs(dir.path()).expect("mount bpffs (run as root)");
    let bpffs = dir.path().to_path_buf();
    let r = std::panic::catch_unwind(|| run(&bpffs));
    let _ = dpdbg::datapath::unload(&bpffs);
    let _ = dpdbg::sys::unmount(&bpffs);
    r.unwrap();
}

/// User plus system CPU of process `pid`, in nanoseconds.
pub fn cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    // utime and stime are fields 14 and 15; after the ')' comes field 3.
    // Index, never filter: tpgid is -1 without a terminal, and dropping it
    // would shift every later field.
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (field(14) + field(15)) * 1_000_000_000 / hz
}

/// Entry `j` of the benchmarks' ct4 tables: a distinct TCP tuple, with
/// counters that `round` changes (so a later write changes every entry it covers).
pub fn ct4_entry(j: u32, round: u64, last_seen_ns: u64, lifetime_s: u32) -> (Ct4Key, CtEntry) {
    let k = Ct4Key {
        saddr: [10, (j >> 16) as u8, (j >> 8) as u8, j as u8],
        daddr: [10, 200, 0, 1],
        sport: (j % 60000) as u16 + 1024,
        dport: 80,
        proto: 6,
        direction: 1,
        pad: 0,
    };
    let e = CtEntry {
        created_ns: last_seen_ns.saturating_sub(1),
        last_seen_ns,
        packets_fwd: j as u64 + 1_000_000 * round,
        bytes_fwd: 60 * j as u64,
        lifetime_s,
        src_identity: 1000,
        ..Default::default()
    };
    (k, e)
}

/// Writes entries 0..n of ct4 (see `ct4_entry`) with batch updates.
pub fn fill_ct4(bpffs: &Path, n: usize, round: u64, last_seen_ns: u64, lifetime_s: u32) {
    let m = AnyMap::open(&MapSpec::Name("ct4".into()), bpffs).unwrap();
    let (ks, vs) = (std::mem::size_of::<Ct4Key>(), std::mem::size_of::<CtEntry>());
    let chunk = 50_000;
    let (mut keys, mut vals) = (Vec::with_capacity(chunk * ks), Vec::with_capacity(chunk * vs));
    let mut i = 0;
    while i < n {
        keys.clear();
        vals.clear();
        for j in i..(i + chunk).min(n) {
            let (k, e) = ct4_entry(j as u32, round, last_seen_ns, lifetime_s);
            // SAFETY: both are repr(C) integer structs.
            keys.extend_from_slice(unsafe { std::slice::from_raw_parts((&k as *const Ct4Key).cast::<u8>(), ks) });
            vals.extend_from_slice(unsafe { std::slice::from_raw_parts((&e as *const CtEntry).cast::<u8>(), vs) });
        }
        m.update_batch(&keys, &vals).unwrap();
        i += chunk;
    }
}

/// Keeps the calling thread (and the threads and children it starts later)
/// on one CPU: the generator on one core and the readers on the other, so
/// neither side's rate depends on how the scheduler mixes them.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Lets the calling thread (and what it starts) run on every CPU again.
pub fn unpin() {
    // SAFETY: a zeroed cpu_set_t with every online CPU's bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        // Online CPUs, not available_parallelism: that counts only the ones this thread may use now.
        for cpu in 0..libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
