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
        snap.events_lost = r.perf_lost() + r.take_remote_lost();
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
