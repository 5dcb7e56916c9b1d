//! Where the dashboard's data comes from. The app sees only [`Snapshot`]s;
//! [`Local`] makes them from the core library (maps read in batches, events
//! from the ring or from `dpdbg serve`), and a remote source can make the
//! same from the node's API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dpdbg::abi::{PolicyKey, PolicyValue};
use dpdbg::events::{Event, decode};
use dpdbg::maps::ct::{CtFilter, CtView};
use dpdbg::maps::{Endpoint, Maps, Metric};
use dpdbg::progs::ProgSummary;
use dpdbg_api::remote::Records;

/// The datapath's settings and attachments, for the overview.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overview {
    pub loaded: bool,
    pub programs: Vec<String>,
    /// "eth0 ingress tcx", one per hook.
    pub attachments: Vec<String>,
    pub transport: String,
    pub aggregation: String,
    pub clock: String,
}

/// One refresh's worth of data.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Seconds on a monotonic clock: rates are deltas over its differences.
    pub at: f64,
    /// Absent when unchanged since the last refresh that carried it.
    pub overview: Option<Overview>,
    pub endpoints: Vec<Endpoint>,
    /// Names of the endpoints' interfaces, by index.
    pub ifnames: Vec<(u32, String)>,
    pub rules: Vec<(PolicyKey, PolicyValue)>,
    pub ct: Vec<CtView>,
    pub metrics: Vec<Metric>,
    /// Totals since statistics went on; only while the Programs view is shown.
    pub programs: Option<Vec<ProgSummary>>,
    /// Events read since the last refresh (drops and policy verdicts; traces are counted only).
    pub events: Vec<Event>,
    /// Events the reader saw but did not keep, and events lost on the way.
    pub traces: u64,
    pub events_lost: u64,
}

/// What the dashboard reads from; one call per refresh.
pub trait Source {
    /// `programs`: whether the Programs view wants the kernel's program statistics.
    fn refresh(&mut self, programs: bool) -> Result<Snapshot, String>;
    /// Where the data comes from, for the title bar.
    fn describe(&self) -> String;
}

/// Most events kept per refresh: the feeds show the newest few hundred.
const EVENTS_KEPT: usize = 2048;

/// The node itself, through the core library.
pub struct Local {
    bpffs: PathBuf,
    server: String,
    records: Option<Records>,
    stats: Option<dpdbg::progs::StatsGuard>,
    overview_at: Option<Instant>,
    started: Instant,
}

impl Local {
    /// `server`: where `dpdbg serve` listens, used when it holds the ring.
    pub fn new(bpffs: PathBuf, server: String) -> Local {
        Local { bpffs, server, records: None, stats: None, overview_at: None, started: Instant::now() }
    }

    fn overview(&self) -> Result<Overview, String> {
        let st = dpdbg::datapath::status_brief(&self.bpffs).map_err(|e| e.to_string())?;
        let rt = dpdbg::datapath::runtime(&self.bpffs).ok();
        Ok(Overview {
            loaded: st.loaded,
            programs: st.programs.iter().map(|p| format!("{} (id {})", p.name, p.id)).collect(),
            attachments: st
                .interfaces
                .iter()
                .map(|a| {
                    format!("{} {:?} {:?}{}", a.interface, a.hook, a.mode, if a.attached { "" } else { " (detached)" })
                        .to_lowercase()
                })
                .collect(),
            transport: st.settings.as_ref().map(|s| format!("{:?}", s.transport).to_lowercase()).unwrap_or_default(),
            aggregation: rt.map(|r| format!("{:?}", r.aggregation).to_lowercase()).unwrap_or_default(),
            clock: st.clock.unwrap_or_default(),
        })
    }

    fn read_events(&mut self, snap: &mut Snapshot) {
        if self.records.is_none() {
            let Ok(settings) = dpdbg::datapath::loaded_settings(&self.bpffs) else { return };
            self.records = Records::open(&self.bpffs, settings.transport, &self.server).ok();
        }
        let Some(r) = self.records.as_mut() else { return };
        let mut kept = 0usize;
        let (mut traces, mut dropped_here) = (0u64, 0u64);
        // One bounded drain per refresh: the ring holds what came since the last.
        r.drain(|rec| {
            let Ok(ev) = decode(rec) else { return };
            if ev.hdr.r#type == dpdbg::abi::EVENT_TRACE {
                traces += 1;
            } else if kept < EVENTS_KEPT {
                kept += 1;
                snap.events.push(ev);
            } else {
                dropped_here += 1;
            }
        });
        snap.traces = traces + dropped_here;
        snap.events_lost = r.perf_lost().saturating_add(r.take_remote_lost());
    }
}

impl Source for Local {
    fn refresh(&mut self, programs: bool) -> Result<Snapshot, String> {
        let mut snap = Snapshot { at: self.started.elapsed().as_secs_f64(), ..Snapshot::default() };
        if self.overview_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            self.overview_at = Some(Instant::now());
            snap.overview = Some(self.overview()?);
        }
        // Programs' statistics cost every program a clock read per run: on
        // only while the view is shown, off again (the guard closes) after.
        if programs {
            if self.stats.is_none() {
                self.stats = Some(dpdbg::progs::enable_stats().map_err(|e| e.to_string())?);
            }
            snap.programs = Some(dpdbg::progs::list_totals().map_err(|e| e.to_string())?);
        } else {
            self.stats = None;
        }
        let maps = match Maps::open(&self.bpffs) {
            Ok(m) => m,
            // Unloaded: an empty datapath, said so by the overview.
            Err(dpdbg::Error::NotLoaded { .. }) => {
                self.records = None;
                return Ok(snap);
            }
            Err(e) => return Err(e.to_string()),
        };
        snap.endpoints = maps.endpoint_list().map_err(|e| e.to_string())?;
        for e in &snap.endpoints {
            if !snap.ifnames.iter().any(|(i, _)| *i == e.ifindex)
                && let Some(n) = dpdbg::sys::ifname(e.ifindex)
            {
                snap.ifnames.push((e.ifindex, n));
            }
        }
        snap.rules = maps.policy_list().map_err(|e| e.to_string())?;
        snap.metrics = maps.metrics().map_err(|e| e.to_string())?;
        dpdbg::maps::ct::for_each(&self.bpffs, &CtFilter::default(), |v| {
            snap.ct.push(v);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        self.read_events(&mut snap);
        Ok(snap)
    }

    fn describe(&self) -> String {
        match &self.records {
            Some(r) if r.is_remote() => {
                format!("{} (events through dpdbg serve at {})", self.bpffs.display(), self.server)
            }
            _ => self.bpffs.display().to_string(),
        }
    }
}

/// A node through its `dpdbg serve` (`dpdbg tui --server`): the maps through
/// the commands the server runs for `--server` (their JSON, the same
/// documents `-o json` prints), the events through its event stream.
pub struct Remote {
    server: String,
    caller: dpdbg_api::client::Caller,
    records: Option<Records>,
    overview_at: Option<Instant>,
    ifnames: Vec<(u32, String)>,
    started: Instant,
}

/// The one of `known` that `s` spells, so remote text fits the `&'static str`
/// fields local data fills; "?" for a word this build does not know.
fn known(s: Option<&str>, known: &[&'static str]) -> &'static str {
    s.and_then(|s| known.iter().copied().find(|k| *k == s)).unwrap_or("?")
}

const DIRECTIONS: &[&str] = &["ingress", "egress"];

fn num(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

impl Remote {
    pub fn connect(server: &str) -> Result<Remote, String> {
        Ok(Remote {
            server: server.to_string(),
            caller: dpdbg_api::client::Caller::connect(server)?,
            records: None,
            overview_at: None,
            ifnames: vec![],
            started: Instant::now(),
        })
    }

    fn overview(&mut self) -> Result<Overview, String> {
        let st = self.caller.json(&["datapath", "status"])?;
        let cfg = self.caller.json(&["datapath", "config"]).unwrap_or_default();
        let setting = |k: &str| {
            cfg.as_array()
                .and_then(|a| a.iter().find(|s| s["key"] == k))
                .and_then(|s| s["value"].as_str().map(str::to_string))
        };
        let empty = vec![];
        let interfaces = st["interfaces"].as_array().unwrap_or(&empty);
        self.ifnames = interfaces
            .iter()
            .filter_map(|a| Some((a["ifindex"].as_u64()? as u32, a["interface"].as_str()?.to_string())))
            .collect();
        self.ifnames.dedup();
        Ok(Overview {
            loaded: st["loaded"].as_bool().unwrap_or(false),
            programs: st["programs"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|p| format!("{} (id {})", p["name"].as_str().unwrap_or("?"), num(p, "id")))
                .collect(),
            attachments: interfaces
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {}{}",
                        a["interface"].as_str().unwrap_or("?"),
                        a["hook"].as_str().unwrap_or("?"),
                        a["mode"].as_str().unwrap_or("?"),
                        if a["attached"].as_bool() == Some(false) { " (detached)" } else { "" }
                    )
                })
                .collect(),
            transport: st["settings"]["transport"].as_str().unwrap_or_default().to_string(),
            aggregation: setting("aggregation")
                .or_else(|| st["settings"]["aggregation"].as_str().map(str::to_string))
                .unwrap_or_default(),
            clock: st["clock"].as_str().unwrap_or_default().to_string(),
        })
    }

    fn read_events(&mut self, snap: &mut Snapshot) {
        if self.records.is_none() {
            self.records = dpdbg_api::remote::RemoteEvents::connect(&self.server).ok().map(Records::Remote);
        }
        let Some(r) = self.records.as_mut() else { return };
        let (mut traces, mut kept) = (0u64, 0usize);
        r.drain(|rec| {
            let Ok(ev) = decode(rec) else { return };
            if ev.hdr.r#type == dpdbg::abi::EVENT_TRACE || kept >= EVENTS_KEPT {
                traces += 1;
            } else {
                kept += 1;
                snap.events.push(ev);
            }
        });
        snap.traces = traces;
        snap.events_lost = r.take_remote_lost();
        if r.wait(Duration::ZERO).is_err() {
            // The stream ended (an unload, a restart): subscribe again next time.
            self.records = None;
        }
    }
}

impl Source for Remote {
    fn refresh(&mut self, programs: bool) -> Result<Snapshot, String> {
        let mut snap = Snapshot { at: self.started.elapsed().as_secs_f64(), ..Snapshot::default() };
        if self.overview_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            self.overview_at = Some(Instant::now());
            snap.overview = Some(self.overview()?);
            if snap.overview.as_ref().is_some_and(|o| !o.loaded) {
                self.records = None;
                return Ok(snap);
            }
        }
        snap.endpoints = serde_json::from_value(self.caller.json(&["bpf", "endpoint", "list"])?)
            .map_err(|e| format!("endpoints from {}: {e}", self.server))?;
        snap.ifnames = self.ifnames.clone();
        let empty = vec![];
        let rules = self.caller.json(&["bpf", "policy", "get"])?;
        snap.rules = rules
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|r| {
                let k = PolicyKey {
                    endpoint_id: num(r, "endpoint_id") as u32,
                    identity: num(r, "identity") as u32,
                    dport: num(r, "port") as u16,
                    proto: num(r, "proto") as u8,
                    direction: if r["direction"] == "egress" {
                        dpdbg::abi::DIR_EGRESS
                    } else {
                        dpdbg::abi::DIR_INGRESS
                    },
                };
                let v = PolicyValue {
                    action: if r["action"] == "deny" { dpdbg::abi::POLICY_DENY } else { dpdbg::abi::POLICY_ALLOW },
                    packets: num(r, "packets"),
                    bytes: num(r, "bytes"),
                    ..PolicyValue::default()
                };
                (k, v)
            })
            .collect();
        let metrics = self.caller.json(&["bpf", "metrics", "list"])?;
        snap.metrics = metrics
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|m| {
                let reason = num(m, "reason") as u8;
                Metric {
                    reason,
                    reason_text: dpdbg::abi::Reason(reason).text(),
                    direction: known(m["direction"].as_str(), DIRECTIONS),
                    packets: num(m, "packets"),
                    bytes: num(m, "bytes"),
                }
            })
            .collect();
        let ct = self.caller.json(&["bpf", "ct", "list"])?;
        snap.ct = ct.as_array().unwrap_or(&empty).iter().filter_map(ct_view).collect();
        if programs {
            // The kernel's statistics stay on only while someone holds them
            // on: remotely the view lists the programs without their rates.
            let progs = self.caller.json(&["prog", "list"])?;
            snap.programs = Some(
                progs
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|p| ProgSummary {
                        id: num(p, "id") as u32,
                        prog_type: known(p["type"].as_str(), dpdbg::progs::PROG_TYPE_NAMES),
                        name: p["name"].as_str().unwrap_or_default().to_string(),
                        tag: p["tag"].as_str().unwrap_or_default().to_string(),
                        attached: serde_json::from_value(p["attached"].clone()).unwrap_or_default(),
                        map_ids: serde_json::from_value(p["map_ids"].clone()).unwrap_or_default(),
                        run_count: None,
                        run_time_ns: None,
                        avg_ns: None,
                    })
                    .collect(),
            );
        }
        self.read_events(&mut snap);
        Ok(snap)
    }

    fn describe(&self) -> String {
        format!("dpdbg serve at {}", self.server)
    }
}

/// One entry of `bpf ct list -o json`.
fn ct_view(v: &serde_json::Value) -> Option<CtView> {
    const STATES: &[&str] = &["NEW", "ESTABLISHED", "CLOSING", "CLOSED", "SYN_SENT", "REPLIED", "EXPIRED"];
    const FLAGS: &[&str] = &["seen_non_syn", "closing_fwd", "closing_rev", "reply_seen"];
    Some(CtView {
        family: num(v, "family") as u8,
        proto: num(v, "proto") as u8,
        direction: known(v["direction"].as_str(), DIRECTIONS),
        src: v["src"].as_str()?.parse().ok()?,
        dst: v["dst"].as_str()?.parse().ok()?,
        sport: num(v, "sport") as u16,
        dport: num(v, "dport") as u16,
        state: known(v["state"].as_str(), STATES),
        flags: v["flags"].as_array().map(|a| a.iter().map(|f| known(f.as_str(), FLAGS)).collect()).unwrap_or_default(),
        tcp_flags_fwd: num(v, "tcp_flags_fwd") as u8,
        tcp_flags_rev: num(v, "tcp_flags_rev") as u8,
        packets_fwd: num(v, "packets_fwd"),
        bytes_fwd: num(v, "bytes_fwd"),
        packets_rev: num(v, "packets_rev"),
        bytes_rev: num(v, "bytes_rev"),
        src_identity: num(v, "src_identity") as u32,
        lifetime_s: num(v, "lifetime_s") as u32,
        age_s: num(v, "age_s"),
        expires_in_s: v["expires_in_s"].as_i64().unwrap_or(0),
    })
}
