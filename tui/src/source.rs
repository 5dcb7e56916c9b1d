//! Where the dashboard's data comes from. The app sees only [`Snapshot`]s.
//! Both sources read the node as the core's own types
//! ([`dpdbg::snapshot::NodeSnapshot`]: the documents the CLI prints, typed):
//! [`Local`] from the core itself, [`Remote`] from `dpdbg serve`'s typed read
//! service (`dpdbg.v1.Snapshot`), so one function makes a snapshot of either.
//! Events come from the ring, the server's monitor socket or its event
//! stream. A source is refreshed on the collector's thread, never the UI's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dpdbg::abi::{PolicyKey, PolicyValue};
use dpdbg::datapath::{Runtime, Status};
use dpdbg::events::{Event, decode};
use dpdbg::maps::ct::CtView;
use dpdbg::maps::{Endpoint, Metric, PolicyRule};
use dpdbg::progs::ProgSummary;
use dpdbg::snapshot::{NodeSnapshot, Want};
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
    /// Endpoint names and identity labels (issue 26), read once a refresh;
    /// absent: keep the last.
    pub names: Option<dpdbg::maps::Names>,
}

/// What the dashboard reads from; one call per refresh, on the collector's
/// thread (hence `Send`).
pub trait Source: Send {
    /// `programs`: whether the Programs view wants the kernel's program statistics.
    fn refresh(&mut self, programs: bool) -> Result<Snapshot, String>;
    /// Where the data comes from, for the title bar.
    fn describe(&self) -> String;
    /// Why a drop happened (`dpdbg::explain`'s summary), asked when the
    /// Drops view opens a drop's details.
    fn explain(&mut self, ev: &Event) -> Result<String, String> {
        let _ = ev;
        Err("this source cannot explain drops".into())
    }
}

/// How often the overview (the datapath's status) is read again.
const OVERVIEW_EVERY: Duration = Duration::from_secs(5);

/// Whether the overview is due, marking it read when it is.
fn overview_due(at: &mut Option<Instant>) -> bool {
    let due = at.is_none_or(|t| t.elapsed() >= OVERVIEW_EVERY);
    if due {
        *at = Some(Instant::now());
    }
    due
}

/// The overview of a status and the run-time settings.
fn overview(st: &Status, rt: Option<&Runtime>) -> Overview {
    Overview {
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
        clock: st.clock.clone().unwrap_or_default(),
    }
}

/// One reading of the node as the app takes it: the same for both sources.
fn snapshot(node: NodeSnapshot, at: f64) -> Snapshot {
    Snapshot {
        at,
        overview: node.status.as_ref().map(|st| overview(st, node.runtime.as_ref())),
        endpoints: node.endpoints,
        ifnames: node.ifnames,
        rules: node.rules.iter().map(PolicyRule::entry).collect(),
        ct: node.conntrack,
        metrics: node.metrics,
        programs: node.programs,
        names: Some(node.names),
        ..Snapshot::default()
    }
}

/// Most events kept per refresh: the feeds show the newest few hundred.
const EVENTS_KEPT: usize = 2048;

/// The node itself, through the core library.
pub struct Local {
    bpffs: PathBuf,
    /// Kept between refreshes: the conntrack tables stay open.
    reader: dpdbg::snapshot::Reader,
    server: String,
    records: Option<Records>,
    stats: Option<dpdbg::progs::StatsGuard>,
    overview_at: Option<Instant>,
    started: Instant,
}

impl Local {
    /// `server`: where `dpdbg serve` listens, used when it holds the ring.
    pub fn new(bpffs: PathBuf, server: String) -> Local {
        Local {
            reader: dpdbg::snapshot::Reader::new(&bpffs),
            bpffs,
            server,
            records: None,
            stats: None,
            overview_at: None,
            started: Instant::now(),
        }
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
        let at = self.started.elapsed().as_secs_f64();
        let status = overview_due(&mut self.overview_at);
        // Programs' statistics cost every program a clock read per run: on
        // only while the view is shown, off again (the guard closes) after.
        if programs {
            if self.stats.is_none() {
                self.stats = Some(dpdbg::progs::enable_stats().map_err(|e| e.to_string())?);
            }
        } else {
            self.stats = None;
        }
        let node = self.reader.read(Want { status, programs }).map_err(|e| e.to_string())?;
        let loaded = node.loaded;
        let mut snap = snapshot(node, at);
        if loaded {
            self.read_events(&mut snap);
        } else {
            // Unloaded: an empty datapath, said so by the overview.
            self.records = None;
        }
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

    fn explain(&mut self, ev: &Event) -> Result<String, String> {
        let r = dpdbg::events::EventRef { hdr: ev.hdr, data: &ev.data };
        let e = dpdbg::explain::Event::from_record(&r).ok_or("not a drop or a denied verdict of the datapath")?;
        dpdbg::explain::explain(&self.bpffs, &e).map(|x| x.summary).map_err(|e| e.to_string())
    }
}

/// A node through its `dpdbg serve` (`dpdbg tui --server`): the maps,
/// status and programs through its typed read service (`dpdbg.v1.Snapshot`,
/// the core's own types; no command runs on the node), the events through
/// its event stream.
pub struct Remote {
    server: String,
    reader: dpdbg_api::client::SnapshotReader,
    records: Option<Records>,
    overview_at: Option<Instant>,
    started: Instant,
}

impl Remote {
    pub fn connect(server: &str) -> Result<Remote, String> {
        Ok(Remote {
            server: server.to_string(),
            reader: dpdbg_api::client::SnapshotReader::connect(server)?,
            records: None,
            overview_at: None,
            started: Instant::now(),
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
        let at = self.started.elapsed().as_secs_f64();
        let status = overview_due(&mut self.overview_at);
        // The node's program statistics are read as they stand: the server
        // does not turn them on, so rates show only while something on the
        // node (a dashboard there, bpftop) holds them on.
        let node = self.reader.read(Want { status, programs })?;
        let loaded = node.loaded;
        let mut snap = snapshot(node, at);
        if loaded {
            self.read_events(&mut snap);
        } else {
            self.records = None;
        }
        Ok(snap)
    }

    fn describe(&self) -> String {
        format!("dpdbg serve at {}", self.server)
    }

    /// The node's maps decided: the node explains, through its
    /// `dpdbg.v1.Commands` (`dpdbg explain` with the drop's monitor line).
    fn explain(&mut self, ev: &Event) -> Result<String, String> {
        let f = dpdbg::flow::Flow::from_event(ev);
        let mut line = Vec::new();
        f.write_json_with(&mut line, dpdbg::flow::JsonOptions::default());
        let args = vec!["explain".to_string(), String::from_utf8_lossy(&line).into_owned()];
        let (code, out, err) = dpdbg_api::client::run_blocking(&self.server, args, "json")?;
        if code != 0 {
            let err = String::from_utf8_lossy(&err);
            let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap_or_default();
            return Err(v["error"].as_str().map_or_else(|| err.trim().to_string(), str::to_string));
        }
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| format!("the node's explanation: {e}"))?;
        v["summary"].as_str().map(str::to_string).ok_or_else(|| "the node's explanation has no summary".to_string())
    }
}
