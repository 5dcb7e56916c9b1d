//! One verdict on the datapath for scripts and people in a hurry (`dpdbg
//! status`): ok, degraded or failed, with the reasons, from checks a CI job
//! or an operator would otherwise run by hand: is a datapath loaded and
//! whole, is every interface the lab manages attached, is a map nearly full,
//! were events lost or left undecoded since the last look, is the clock
//! calibration still right.
//!
//! "Since the last look" needs memory between calls: the event counters
//! seen by the last call are kept in a small JSON file (`/run/dpdbg/
//! status.json`, or `DPDBG_STATUS_STATE`), one entry per pin directory, so
//! the next call reports only what changed. A reload of the datapath starts
//! its counters again; the entry remembers the program id it counted for.
//!
//! Whether `dpdbg serve` answers is asked by the CLI (the core has no async
//! runtime); it adds its check to the same list.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::datapath::{self, LoadState, Pins};
use crate::lab::LabState;
use crate::{Error, Result};

/// Where the counters of the last look are kept unless DPDBG_STATUS_STATE says otherwise.
pub const STATE_FILE: &str = "/run/dpdbg/status.json";

/// A map this full (in percent of its entries) makes the node degraded.
pub const MAP_FULL_PERCENT: f64 = 90.0;

/// How far the datapath's jiffies clock may be from CLOCK_MONOTONIC_COARSE
/// before its calibration counts as stale: conntrack's shortest lifetime
/// is 10 s, so a second off is already a tenth of it.
pub const CLOCK_SKEW_MAX_NS: u64 = 1_000_000_000;

/// How bad one finding is. Ordered: the worst decides the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Degraded,
    Failed,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Degraded => "degraded",
            Severity::Failed => "failed",
        }
    }
}

/// One check and what it found.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Stable name: datapath, interfaces, maps, events, clock, serve, kernel_drops.
    pub check: &'static str,
    pub severity: Severity,
    /// What was found, in the operator's words (and what to run, when not ok).
    pub message: String,
}

impl Check {
    pub fn new(check: &'static str, severity: Severity, message: impl Into<String>) -> Check {
        Check { check, severity, message: message.into() }
    }
}

/// The verdict and every check behind it.
#[derive(Clone, Debug, Serialize)]
pub struct Assessment {
    pub verdict: Severity,
    /// The messages of the checks that are not ok, worst first.
    pub reasons: Vec<String>,
    pub checks: Vec<Check>,
    pub pin_dir: PathBuf,
    /// Where the counters of this look were kept for the next.
    pub state_file: PathBuf,
}

impl Assessment {
    /// Adds a check and recomputes the verdict and the reasons.
    pub fn push(&mut self, c: Check) {
        self.checks.push(c);
        self.settle();
    }

    fn settle(&mut self) {
        self.verdict = self.checks.iter().map(|c| c.severity).max().unwrap_or(Severity::Ok);
        let mut bad: Vec<&Check> = self.checks.iter().filter(|c| c.severity != Severity::Ok).collect();
        bad.sort_by_key(|c| std::cmp::Reverse(c.severity));
        self.reasons = bad.iter().map(|c| c.message.clone()).collect();
    }
}

/// Where the inputs of an assessment live (tests and a second lab point elsewhere).
#[derive(Clone, Debug)]
pub struct Options {
    /// The lab's state file: its endpoints' interfaces must be attached.
    pub lab_state: Option<PathBuf>,
    /// Where the counters of the last look are kept.
    pub state_file: PathBuf,
}

/// Counters seen at the last look, per pin directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Seen {
    /// The id of from_endpoint when they were read: another id is another
    /// load, whose counters started again from zero.
    prog_id: u32,
    events_lost: u64,
    events_undecodable: u64,
}

fn read_seen(path: &Path) -> BTreeMap<String, Seen> {
    fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Written whole (a temporary name, then renamed) so that a reader never
/// sees half a file.
fn write_seen(path: &Path, all: &BTreeMap<String, Seen>) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let json = serde_json::to_vec_pretty(all).map_err(|e| Error::InvalidInput(e.to_string()))?;
    fs::write(&tmp, json).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
}

/// Assesses the datapath under `bpffs`. Errors only when it cannot look at
/// all (no privileges, no bpffs); everything it finds is a check.
pub fn assess(bpffs: &Path, opts: &Options) -> Result<Assessment> {
    let pins = Pins::new(bpffs);
    let mut a = Assessment {
        verdict: Severity::Ok,
        reasons: vec![],
        checks: vec![],
        pin_dir: pins.root().to_path_buf(),
        state_file: opts.state_file.clone(),
    };
    let st = datapath::status(bpffs)?;
    match (&st.state, &st.partial) {
        (LoadState::Loaded, _) => a.push(Check::new("datapath", Severity::Ok, "loaded")),
        (LoadState::Partial, Some(p)) => a.push(Check::new(
            "datapath",
            Severity::Failed,
            format!(
                "the datapath under {} is partial ({}){}: run `dpdbg datapath load` to repair it, or `dpdbg datapath unload`",
                pins.root().display(),
                p.describe(),
                st.busy_pid.as_ref().map_or(String::new(), |pid| format!(", another dpdbg (pid {pid}) is changing it"))
            ),
        )),
        _ => a.push(Check::new(
            "datapath",
            Severity::Failed,
            format!("no datapath is loaded under {}: run `dpdbg datapath load`", pins.root().display()),
        )),
    }
    a.push(interfaces(&st, bpffs, opts.lab_state.as_deref()));
    if st.state != LoadState::Loaded {
        return Ok(a);
    }
    a.push(maps(&st));
    a.push(events(&st, opts));
    a.push(clock(bpffs));
    if let Some(k) = &st.kernel_drops {
        a.push(kernel_drops(k));
    }
    Ok(a)
}

/// Every interface the lab manages on this bpffs, and every one `dpdbg
/// serve --attach` says it attached, must run both programs; one the agent
/// could not attach, and an attachment the kernel no longer has (a filter
/// removed by hand, an interface gone), are named too.
fn interfaces(st: &datapath::Status, bpffs: &Path, lab_state: Option<&Path>) -> Check {
    let mut problems = Vec::new();
    let mut managed = 0;
    if let Some(path) = lab_state
        && let Ok(data) = fs::read(path)
    {
        match serde_json::from_slice::<LabState>(&data) {
            Ok(lab) if same_dir(&lab.bpffs, bpffs) => {
                for ep in &lab.endpoints {
                    managed += 1;
                    let hooks: Vec<_> = st.interfaces.iter().filter(|i| i.interface == ep.host_if).collect();
                    let attached = hooks.iter().filter(|i| i.attached).count();
                    if attached < 2 {
                        let missing: Vec<&str> = datapath::Hook::BOTH
                            .iter()
                            .filter(|h| !hooks.iter().any(|i| i.hook == **h && i.attached))
                            .map(|h| h.as_str())
                            .collect();
                        problems.push(format!(
                            "interface {} (lab endpoint {}) is not attached ({}): run `dpdbg datapath attach {}`",
                            ep.host_if,
                            ep.name,
                            missing.join(", "),
                            ep.host_if
                        ));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("the lab's state file {} does not parse: {e}", path.display())),
        }
    }
    if let Some(agent) = &st.agent {
        for name in &agent.attached {
            managed += 1;
            let hooks: Vec<_> = st.interfaces.iter().filter(|i| &i.interface == name && i.attached).collect();
            if hooks.len() < 2 && crate::sys::ifindex(name).is_ok() {
                problems.push(format!(
                    "interface {name} (managed by dpdbg serve, pid {}) is not attached: the agent attaches it again at its next change, or run `dpdbg datapath attach {name}`",
                    agent.pid
                ));
            }
        }
        for (name, why) in &agent.failed {
            problems.push(format!("interface {name}: dpdbg serve (pid {}) could not attach it: {why}", agent.pid));
        }
    }
    for i in st.interfaces.iter().filter(|i| !i.attached) {
        let text = format!(
            "interface {} ({}) is recorded as attached but the kernel does not run {} there: run `dpdbg datapath detach {}` and attach it again",
            i.interface,
            i.hook.as_str(),
            i.program,
            i.interface
        );
        if !problems.iter().any(|p| p.starts_with(&format!("interface {} ", i.interface))) {
            problems.push(text);
        }
    }
    if problems.is_empty() {
        let n = st.interfaces.iter().map(|i| &i.interface).collect::<std::collections::BTreeSet<_>>().len();
        Check::new(
            "interfaces",
            Severity::Ok,
            format!(
                "{n} attached{}",
                if managed > 0 { format!(", {managed} managed by the lab or dpdbg serve") } else { String::new() }
            ),
        )
    } else {
        Check::new("interfaces", Severity::Degraded, problems.join("; "))
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || fs::canonicalize(a).ok().zip(fs::canonicalize(b).ok()).is_some_and(|(x, y)| x == y)
}

fn maps(st: &datapath::Status) -> Check {
    let full: Vec<String> = st
        .maps
        .iter()
        .filter(|m| m.max_entries > 0 && !m.map_type.contains("array") && !m.map_type.contains("ringbuf"))
        .filter_map(|m| {
            let pct = m.entries? as f64 * 100.0 / m.max_entries as f64;
            (pct > MAP_FULL_PERCENT).then(|| {
                format!("map {} is {pct:.1}% full ({} of {} entries)", m.name, m.entries.unwrap_or(0), m.max_entries)
            })
        })
        .collect();
    if full.is_empty() {
        Check::new("maps", Severity::Ok, format!("every map under {MAP_FULL_PERCENT}% full"))
    } else {
        Check::new("maps", Severity::Degraded, full.join("; "))
    }
}

/// Events not written (reason 242) and records not decoded (243) since the
/// last look; the counts are kept for the next.
fn events(st: &datapath::Status, opts: &Options) -> Check {
    let (Some(lost), Some(bad)) = (st.events_lost, st.events_undecodable) else {
        return Check::new("events", Severity::Degraded, "the event counters could not be read");
    };
    let prog_id = st.programs.iter().find(|p| p.name == datapath::PROG_FROM_ENDPOINT).map_or(0, |p| p.id);
    let key = st.pin_dir.display().to_string();
    let mut all = read_seen(&opts.state_file);
    let before = all.get(&key).filter(|s| s.prog_id == prog_id).cloned();
    let since = if before.is_some() { "since the last look" } else { "since the datapath was loaded" };
    let before = before.unwrap_or_default();
    let (new_lost, new_bad) = (lost.saturating_sub(before.events_lost), bad.saturating_sub(before.events_undecodable));
    all.insert(key, Seen { prog_id, events_lost: lost, events_undecodable: bad });
    let kept = write_seen(&opts.state_file, &all);
    let mut problems = Vec::new();
    if new_lost > 0 {
        problems.push(format!(
            "{new_lost} events not written {since} (the ring was full: reason 242; a reader is too slow or absent)"
        ));
    }
    if new_bad > 0 {
        problems.push(format!("{new_bad} event records undecodable by readers {since} (reason 243)"));
    }
    if let Err(e) = kept {
        problems.push(format!("the counters could not be kept for the next look: {e}"));
    }
    if problems.is_empty() {
        Check::new("events", Severity::Ok, format!("none lost or undecodable {since}"))
    } else {
        Check::new("events", Severity::Degraded, problems.join("; "))
    }
}

/// Kernel drops on or switched off are fine; missing where the kernel has
/// the tracepoint is something that went wrong at load.
fn kernel_drops(k: &crate::kdrop::KernelDrops) -> Check {
    match k.state {
        "on" | "off" => Check::new("kernel_drops", Severity::Ok, format!("{}: {}", k.state, k.detail)),
        _ if crate::kdrop::tracepoint_available().is_err() => {
            Check::new("kernel_drops", Severity::Ok, format!("unavailable: {}", k.detail))
        }
        _ => Check::new("kernel_drops", Severity::Degraded, format!("kernel drops cannot be seen: {}", k.detail)),
    }
}

/// The kernel's jiffies counter now, from /proc/timer_list (root only).
fn jiffies_now() -> Option<u64> {
    let text = fs::read_to_string("/proc/timer_list").ok()?;
    text.lines().find_map(|l| l.strip_prefix("jiffies: ")).and_then(|v| v.trim().parse().ok())
}

/// The datapath turns jiffies into coarse-clock time with a line measured
/// at load (`clk`); CLOCK_MONOTONIC is slewed by NTP and jiffies are not,
/// so over weeks the line drifts and conntrack ages go wrong with it.
fn clock(bpffs: &Path) -> Check {
    let Ok(c) = datapath::clock_calibration(bpffs) else {
        return Check::new("clock", Severity::Degraded, "the clock calibration could not be read");
    };
    if c.ns_per_jiffy == 0 {
        return Check::new("clock", Severity::Ok, "bpf_ktime_get_coarse_ns (not calibrated: slower, still right)");
    }
    let (before, j, after) = (crate::sys::monotonic_coarse_ns(), jiffies_now(), crate::sys::monotonic_coarse_ns());
    let Some(j) = j else {
        return Check::new("clock", Severity::Ok, "jiffies (calibrated; /proc/timer_list unreadable, not checked)");
    };
    let predicted = (j.wrapping_mul(c.ns_per_jiffy) as i64).wrapping_add(c.offset_ns) as u64;
    let now = before / 2 + after / 2;
    let skew = predicted.abs_diff(now);
    // A tick of the reading itself is always possible, and /proc/timer_list
    // (every timer of every CPU) can take a second to read on a busy node:
    // where in that window jiffies were read is unknown, by half its length.
    let uncertain = after.saturating_sub(before) / 2;
    if skew > CLOCK_SKEW_MAX_NS + c.ns_per_jiffy + uncertain {
        Check::new(
            "clock",
            Severity::Degraded,
            format!(
                "the clock calibration is stale: the datapath's clock is {:.3} s off CLOCK_MONOTONIC_COARSE, so conntrack ages are off by as much; reload the datapath to measure it again",
                skew as f64 / 1e9
            ),
        )
    } else {
        Check::new("clock", Severity::Ok, format!("jiffies calibrated, {:.1} ms off", skew as f64 / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_check_decides() {
        let mut a = Assessment {
            verdict: Severity::Ok,
            reasons: vec![],
            checks: vec![],
            pin_dir: PathBuf::new(),
            state_file: PathBuf::new(),
        };
        a.push(Check::new("datapath", Severity::Ok, "loaded"));
        assert_eq!(a.verdict, Severity::Ok);
        assert!(a.reasons.is_empty());
        a.push(Check::new("maps", Severity::Degraded, "map ct4 is 95% full"));
        a.push(Check::new("serve", Severity::Failed, "gone"));
        assert_eq!(a.verdict, Severity::Failed);
        assert_eq!(a.reasons, vec!["gone".to_string(), "map ct4 is 95% full".to_string()]);
    }

    #[test]
    fn seen_counters_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("status.json");
        assert!(read_seen(&path).is_empty(), "no file: nothing seen");
        let mut all = BTreeMap::new();
        all.insert("/sys/fs/bpf/dpdbg".to_string(), Seen { prog_id: 7, events_lost: 3, events_undecodable: 1 });
        write_seen(&path, &all).unwrap();
        assert_eq!(read_seen(&path), all);
        fs::write(&path, b"{not json").unwrap();
        assert!(read_seen(&path).is_empty(), "a damaged file counts as no look yet");
    }
}
