//! Every BPF program on the system (`bpftool prog` territory).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::syscall as raw;
use crate::{Error, Result, sys};

/// The kernel's program type names (enum bpf_prog_type), as bpftool prints them.
pub const PROG_TYPE_NAMES: &[&str] = &[
    "unspec",
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
];

/// The name of a program type number.
pub fn prog_type_name(t: u32) -> &'static str {
    PROG_TYPE_NAMES.get(t as usize).copied().unwrap_or("unknown")
}

/// One program, as `prog list` prints it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProgSummary {
    pub id: u32,
    #[serde(rename = "type", deserialize_with = "crate::words::prog_type")]
    pub prog_type: crate::words::Word,
    pub name: String,
    pub tag: String,
    /// Where the program is attached, when a link says so ("tcx ingress eth0").
    pub attached: Vec<String>,
    pub map_ids: Vec<u32>,
    /// Present when statistics were on (`--stats`).
    pub run_count: Option<u64>,
    pub run_time_ns: Option<u64>,
    pub avg_ns: Option<f64>,
}

/// Turns the kernel's run-time statistics on while the value lives.
pub struct StatsGuard(#[allow(dead_code)] OwnedFd);

pub fn enable_stats() -> Result<StatsGuard> {
    sys::require_privileges("program statistics")?;
    raw::enable_run_time_stats().map(StatsGuard).map_err(|e| Error::io("bpf_enable_stats", "BPF_STATS_RUN_TIME", e))
}

/// Run count and run time of every program now, by id.
fn counters() -> Result<Counters> {
    let mut out = std::collections::HashMap::new();
    for id in raw::prog_ids().map_err(|e| Error::io("bpf_prog_get_next_id", "programs", e))? {
        let Ok(fd) = raw::prog_fd_by_id(id) else { continue };
        let Ok(i) = raw::prog_info(fd.as_raw_fd()) else { continue };
        out.insert(id, (i.run_cnt, i.run_time_ns));
    }
    Ok(out)
}

/// Lists every program. With `stats`, statistics are turned on and the
/// runs and time of the `window` are reported: deltas between a reading
/// before and one after, as bpftop does, so a kernel whose statistics were
/// already on does not report lifetime totals as the window's.
pub fn list(stats: Option<Duration>) -> Result<Vec<ProgSummary>> {
    sys::require_privileges("listing programs")?;
    let window = match stats {
        Some(w) => {
            let g = enable_stats()?;
            let before = counters()?;
            std::thread::sleep(w);
            let after = counters()?;
            drop(g);
            Some((before, after))
        }
        None => None,
    };
    summarize(window)
}

/// Every program with the kernel's run count and run time as they stand
/// (totals since statistics went on): for callers that take their own
/// deltas between readings, as a dashboard does once per refresh.
pub fn list_totals() -> Result<Vec<ProgSummary>> {
    sys::require_privileges("listing programs")?;
    summarize(Some((Default::default(), counters()?)))
}

type Counters = std::collections::HashMap<u32, (u64, u64)>;

fn summarize(window: Option<(Counters, Counters)>) -> Result<Vec<ProgSummary>> {
    let links = raw::links().unwrap_or_default();
    let mut out = Vec::new();
    for id in raw::prog_ids().map_err(|e| Error::io("bpf_prog_get_next_id", "programs", e))? {
        let Ok(fd) = raw::prog_fd_by_id(id) else { continue };
        let Ok(i) = raw::prog_info(fd.as_raw_fd()) else { continue };
        let attached = links
            .iter()
            .filter(|l| l.prog_id == id)
            .filter_map(|l| {
                let ifname = sys::ifname(l.ifindex?).unwrap_or_else(|| format!("ifindex {}", l.ifindex.unwrap_or(0)));
                let kind = match (l.link_type, l.attach_type) {
                    (11, Some(46)) => "tcx ingress",
                    (11, Some(47)) => "tcx egress",
                    (11, _) => "tcx",
                    (13, _) => "netkit",
                    (6, _) => "xdp",
                    _ => "link",
                };
                Some(format!("{kind} {ifname}"))
            })
            .collect();
        // A program loaded during the window counts from zero.
        let delta = window.as_ref().map(|(before, after)| {
            let (c0, t0) = before.get(&id).copied().unwrap_or((0, 0));
            let (c1, t1) = after.get(&id).copied().unwrap_or((c0, t0));
            (c1.saturating_sub(c0), t1.saturating_sub(t0))
        });
        out.push(ProgSummary {
            id,
            prog_type: prog_type_name(i.prog_type),
            name: i.name,
            tag: i.tag.iter().map(|b| format!("{b:02x}")).collect(),
            attached,
            map_ids: i.map_ids,
            run_count: delta.map(|d| d.0),
            run_time_ns: delta.map(|d| d.1),
            avg_ns: delta.and_then(|(c, t)| (c > 0).then(|| t as f64 / c as f64)),
        });
    }
    Ok(out)
}
