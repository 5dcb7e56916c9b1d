//! The dashboard's state, apart from drawing: what each view shows, worked
//! out from successive snapshots (rates are deltas between two), and what
//! each key does. Everything here is plain data, so tests drive it directly.

use std::collections::VecDeque;

// Ten thousand conntrack entries are looked up every refresh: SipHash was a
// quarter of the dashboard's time, foldhash (hashbrown's own) is a fraction.
use foldhash::{HashMap, HashMapExt};
use std::net::IpAddr;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use dpdbg::abi::{self, Reason};
use dpdbg::events::Event;
use dpdbg::flow::{Flow, LineOptions, write_line_with};
use dpdbg::maps::Names;
use dpdbg::maps::ct::CtView;

use crate::source::{Overview, Snapshot};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Endpoints,
    Policy,
    Conntrack,
    Drops,
    Programs,
}

impl Tab {
    pub const ALL: [Tab; 6] = [Tab::Overview, Tab::Endpoints, Tab::Policy, Tab::Conntrack, Tab::Drops, Tab::Programs];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Endpoints => "Endpoints",
            Tab::Policy => "Policy",
            Tab::Conntrack => "Conntrack",
            Tab::Drops => "Drops",
            Tab::Programs => "Programs",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// How the conntrack table is ordered (`s` cycles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtSort {
    Bytes,
    Packets,
    Age,
    TimeLeft,
}

impl CtSort {
    fn next(self) -> CtSort {
        match self {
            CtSort::Bytes => CtSort::Packets,
            CtSort::Packets => CtSort::Age,
            CtSort::Age => CtSort::TimeLeft,
            CtSort::TimeLeft => CtSort::Bytes,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CtSort::Bytes => "bytes",
            CtSort::Packets => "packets",
            CtSort::Age => "age",
            CtSort::TimeLeft => "time left",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRow {
    pub id: u32,
    /// NAMESPACE/POD, or "" for an endpoint without a name.
    pub name: String,
    pub identity: u32,
    pub addresses: Vec<IpAddr>,
    pub interface: String,
    pub enforcement: &'static str,
    pub fwd_packets: u64,
    pub fwd_bytes: u64,
    pub drop_packets: u64,
    pub drop_bytes: u64,
    pub fwd_pps: f64,
    pub drop_pps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleRow {
    pub rule: String,
    /// The endpoint's name and the peer identity's labels ("" without).
    pub endpoint_name: String,
    pub peer_labels: String,
    pub action: &'static str,
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CtRow {
    pub view: CtView,
    pub packets: u64,
    pub bytes: u64,
    pub bps: f64,
}

/// Whether the `/` filter's text is in the entry's addresses, ports,
/// protocol, state, direction or pods. Built only while a filter is set:
/// ten thousand entries' texts each refresh would cost more than the rest.
fn ct_matches(v: &CtView, needle: &str, buf: &mut String, names: &Names) -> bool {
    use std::fmt::Write;
    buf.clear();
    let _ =
        write!(buf, "{} {} {} {} {} {} {}", v.src, v.dst, v.sport, v.dport, proto_name(v.proto), v.state, v.direction);
    for ip in [v.src, v.dst] {
        if let Some(p) = names.pod_at(ip) {
            let _ = write!(buf, " {p}");
        }
    }
    buf.make_ascii_lowercase();
    buf.contains(needle)
}

#[derive(Clone, Debug, PartialEq)]
pub struct DropRow {
    pub time: String,
    pub reason: String,
    pub endpoint: u32,
    /// The endpoint's name when the drop came, or "".
    pub endpoint_name: String,
    pub summary: String,
    pub event: Event,
    /// Why it was dropped (Enter), once asked for.
    pub explanation: Option<Explained>,
}

/// A drop's explanation: computed on the collector's thread (a trace, about
/// a millisecond, and the datapath's lock), so the UI asks and draws on.
#[derive(Clone, Debug, PartialEq)]
pub enum Explained {
    Pending,
    Done(Result<String, String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProgRow {
    pub id: u32,
    pub prog_type: &'static str,
    pub name: String,
    pub attached: String,
    pub runs: u64,
    pub runs_per_s: f64,
    pub avg_ns: f64,
    /// Of one core.
    pub cpu_pct: f64,
}

/// Samples kept for the sparklines.
pub const HISTORY: usize = 120;
/// Lines kept in the verdict and drop feeds.
pub const FEED: usize = 500;

/// What a key asked for, beyond changing the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
}

#[derive(Debug)]
pub struct App {
    pub tab: Tab,
    pub source: String,
    pub help: bool,
    pub paused: bool,
    pub error: Option<String>,
    pub overview: Overview,
    /// Packets per second, one sample per refresh: kept as fractions, since
    /// a trickle (one drop every few refreshes) is under one a second.
    pub fwd_history: VecDeque<f64>,
    pub drop_history: VecDeque<f64>,
    pub drops_by_reason: Vec<(String, u64, f64)>,
    pub events_lost: u64,
    pub talkers: Vec<(String, f64)>,
    pub endpoints: Vec<EndpointRow>,
    pub rules: Vec<RuleRow>,
    pub verdicts: VecDeque<String>,
    pub ct: Vec<CtRow>,
    pub ct_filter: String,
    pub filtering: bool,
    pub ct_sort: CtSort,
    /// Indexes into `ct` of the rows the filter keeps, in the chosen order.
    ct_order: Vec<u32>,
    pub drops: VecDeque<DropRow>,
    pub detail: bool,
    pub programs: Vec<ProgRow>,
    selected: [usize; 6],
    /// Rows a page moves, set by the drawing code from the last frame.
    pub page: usize,
    /// Whether the screen needs drawing again.
    pub dirty: bool,
    prev_at: Option<f64>,
    prev_metrics: Option<(u64, u64, HashMap<u8, u64>)>,
    /// The last refresh's entries and their byte counts, in the order read.
    prev_ct: Vec<(CtId, u64)>,
    prev_rules: HashMap<String, u64>,
    prev_eps: HashMap<u32, (u64, u64)>,
    prev_progs: HashMap<u32, (u64, u64)>,
    /// Drops counted per endpoint since the dashboard started: (packets, bytes).
    ep_drops: HashMap<u32, (u64, u64)>,
    wall_offset_ns: i128,
    /// Endpoint names and identity labels, as the source last read them
    /// (once a refresh, never per event).
    pub names: Names,
}

/// A conntrack entry's identity; the direction by its first letter, so
/// comparing ten thousand keys never compares strings.
type CtId = (u8, u8, u8, u16, u16, IpAddr, IpAddr);

fn ct_id(v: &CtView) -> CtId {
    (v.family, v.proto, v.direction.as_bytes().first().copied().unwrap_or(0), v.sport, v.dport, v.src, v.dst)
}

fn proto_name(p: u8) -> String {
    dpdbg::flow::proto_name(p).map_or_else(|| format!("proto {p}"), str::to_string)
}

fn rate(now: u64, before: Option<u64>, dt: Option<f64>) -> f64 {
    match (before, dt) {
        (Some(b), Some(dt)) if dt > 0.0 => now.saturating_sub(b) as f64 / dt,
        _ => 0.0,
    }
}

impl App {
    pub fn new(source: String) -> App {
        App {
            tab: Tab::Overview,
            source,
            help: false,
            paused: false,
            error: None,
            overview: Overview::default(),
            fwd_history: VecDeque::with_capacity(HISTORY),
            drop_history: VecDeque::with_capacity(HISTORY),
            drops_by_reason: vec![],
            events_lost: 0,
            talkers: vec![],
            endpoints: vec![],
            rules: vec![],
            verdicts: VecDeque::new(),
            ct: vec![],
            ct_filter: String::new(),
            filtering: false,
            ct_sort: CtSort::Bytes,
            ct_order: vec![],
            drops: VecDeque::new(),
            detail: false,
            programs: vec![],
            selected: [0; 6],
            page: 10,
            dirty: true,
            prev_at: None,
            prev_metrics: None,
            prev_ct: vec![],
            prev_rules: HashMap::new(),
            prev_eps: HashMap::new(),
            prev_progs: HashMap::new(),
            ep_drops: HashMap::new(),
            wall_offset_ns: dpdbg::sys::wall_offset_ns(),
            names: Names::default(),
        }
    }

    /// For tests: wall-clock times from a fixed offset.
    pub fn with_wall_offset(mut self, ns: i128) -> App {
        self.wall_offset_ns = ns;
        self
    }

    pub fn selected(&self) -> usize {
        self.selected[self.tab.index()]
    }

    /// Rows of the current view, for moving the selection.
    fn rows(&self) -> usize {
        match self.tab {
            Tab::Overview => 0,
            Tab::Endpoints => self.endpoints.len(),
            Tab::Policy => self.rules.len(),
            Tab::Conntrack => self.ct_order.len(),
            Tab::Drops => self.drops.len(),
            Tab::Programs => self.programs.len(),
        }
    }

    /// The conntrack rows the filter keeps, in the chosen order.
    pub fn visible_ct(&self) -> Vec<&CtRow> {
        self.ct_order.iter().filter_map(|&i| self.ct.get(i as usize)).collect()
    }

    /// Filters and sorts the conntrack rows once, when they, the filter or
    /// the order change, not at every draw: ten thousand rows take
    /// milliseconds to compare. Ties keep the map's order.
    fn reorder(&mut self) {
        let needle = self.ct_filter.trim().to_lowercase();
        let mut buf = String::new();
        let mut keyed: Vec<(i64, u32)> = self
            .ct
            .iter()
            .enumerate()
            .filter(|(_, r)| needle.is_empty() || ct_matches(&r.view, &needle, &mut buf, &self.names))
            .map(|(i, r)| {
                let k = match self.ct_sort {
                    CtSort::Bytes => -(r.bytes.min(i64::MAX as u64) as i64),
                    CtSort::Packets => -(r.packets.min(i64::MAX as u64) as i64),
                    CtSort::Age => -(r.view.age_s.min(i64::MAX as u64) as i64),
                    CtSort::TimeLeft => r.view.expires_in_s,
                };
                (k, i as u32)
            })
            .collect();
        keyed.sort_unstable();
        self.ct_order = keyed.into_iter().map(|(_, i)| i).collect();
    }

    pub fn selected_drop(&self) -> Option<&DropRow> {
        self.drops.get(self.selected[Tab::Drops.index()])
    }

    /// The drop whose details are open and not explained yet: marked as
    /// being explained, its event for the collector. A kernel drop is the
    /// kernel's, not a decision of the maps: said at once.
    pub fn wants_explanation(&mut self) -> Option<Event> {
        if self.tab != Tab::Drops || !self.detail {
            return None;
        }
        let i = self.selected[Tab::Drops.index()];
        let d = self.drops.get_mut(i)?;
        if d.explanation.is_some() {
            return None;
        }
        if !dpdbg::explain::Event::wanted(&d.event.hdr) {
            d.explanation =
                Some(Explained::Done(Err("a kernel drop: the kernel's, not a decision of the datapath's maps".into())));
            return None;
        }
        d.explanation = Some(Explained::Pending);
        Some(d.event.clone())
    }

    /// An explanation the collector computed, for the drop it was asked for.
    pub fn explained(&mut self, timestamp_ns: u64, endpoint: u32, r: Result<String, String>) {
        if let Some(d) = self
            .drops
            .iter_mut()
            .find(|d| d.event.hdr.timestamp_ns == timestamp_ns && d.event.hdr.endpoint_id == endpoint)
        {
            d.explanation = Some(Explained::Done(r));
            self.dirty = true;
        }
    }

    fn select(&mut self, to: isize) {
        let n = self.rows();
        let i = &mut self.selected[self.tab.index()];
        *i = if n == 0 { 0 } else { to.clamp(0, n as isize - 1) as usize };
    }

    /// One key press; returns what the caller must do beyond redrawing.
    pub fn on_key(&mut self, k: KeyEvent) -> Action {
        if k.kind == KeyEventKind::Release {
            return Action::None;
        }
        self.dirty = true;
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            return Action::Quit;
        }
        if self.filtering {
            match k.code {
                KeyCode::Esc => {
                    self.filtering = false;
                    self.ct_filter.clear();
                }
                KeyCode::Enter => self.filtering = false,
                KeyCode::Backspace => {
                    self.ct_filter.pop();
                }
                KeyCode::Char(c) => self.ct_filter.push(c),
                _ => {}
            }
            self.reorder();
            self.select(0);
            return Action::None;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            return if k.code == KeyCode::Char('q') { Action::Quit } else { Action::None };
        }
        let cur = self.selected() as isize;
        let page = self.page.max(1) as isize;
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab => self.tab = Tab::ALL[(self.tab.index() + 1) % Tab::ALL.len()],
            KeyCode::BackTab => self.tab = Tab::ALL[(self.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len()],
            KeyCode::Char(c @ '1'..='6') => self.tab = Tab::ALL[(c as u8 - b'1') as usize],
            KeyCode::Down | KeyCode::Char('j') => self.select(cur + 1),
            KeyCode::Up | KeyCode::Char('k') => self.select(cur - 1),
            KeyCode::PageDown => self.select(cur + page),
            KeyCode::PageUp => self.select(cur - page),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(isize::MAX / 2),
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Char('s') if self.tab == Tab::Conntrack => {
                self.ct_sort = self.ct_sort.next();
                self.reorder();
            }
            KeyCode::Char('/') if self.tab == Tab::Conntrack => {
                self.filtering = true;
                self.ct_filter.clear();
            }
            KeyCode::Enter if self.tab == Tab::Drops => self.detail = !self.detail,
            KeyCode::Esc => {
                self.detail = false;
                self.ct_filter.clear();
                self.reorder();
            }
            _ => self.dirty = false,
        }
        Action::None
    }

    /// A refresh that failed: said in the status line; the last data stays.
    pub fn failed(&mut self, why: String) {
        if self.error.as_ref() != Some(&why) {
            self.error = Some(why);
            self.dirty = true;
        }
    }

    /// The NAMESPACE/POD of the endpoint that owns `ip`, if one does.
    pub fn pod_at(&self, ip: IpAddr) -> Option<String> {
        self.names.pod_at(ip).map(|p| p.to_string())
    }

    /// Takes one snapshot in. Paused, the feeds and tables stand still.
    pub fn ingest(&mut self, mut s: Snapshot) {
        if self.error.take().is_some() {
            self.dirty = true;
        }
        if self.paused {
            return;
        }
        self.dirty = true;
        let dt = self.prev_at.map(|p| s.at - p);
        self.prev_at = Some(s.at);
        if let Some(o) = s.overview {
            self.overview = o;
        }
        if let Some(n) = s.names.take() {
            self.names = n;
        }
        self.events(&s.events);
        self.events_lost = self.events_lost.saturating_add(s.events_lost);
        self.metrics(&s.metrics, dt);
        self.conntrack(std::mem::take(&mut s.ct), dt);
        self.reorder();
        self.endpoints(&s.endpoints, &s.ifnames, dt);
        self.rules(&s.rules, dt);
        if let Some(p) = &s.programs {
            self.programs(p, dt);
        } else {
            self.prev_progs.clear();
        }
        let n = self.rows();
        let i = &mut self.selected[self.tab.index()];
        *i = (*i).min(n.saturating_sub(1));
    }

    fn events(&mut self, events: &[Event]) {
        let is_drop = |t: u8| t == abi::EVENT_DROP || t == dpdbg::kdrop::EVENT_KERNEL_DROP;
        for ev in events.iter().filter(|e| is_drop(e.hdr.r#type)) {
            let e = self.ep_drops.entry(ev.hdr.endpoint_id).or_default();
            e.0 += 1;
            e.1 += u64::from(ev.hdr.orig_len);
        }
        // Only what the feeds can keep is decoded and written: a busy second
        // brings thousands of drops, and the feed shows the newest FEED.
        let keep = |want: &dyn Fn(u8) -> bool| {
            let mut n = 0usize;
            let mut idx: Vec<usize> = (0..events.len())
                .rev()
                .filter(|&i| want(events[i].hdr.r#type))
                .take_while(|_| {
                    n += 1;
                    n <= FEED
                })
                .collect();
            idx.reverse();
            idx
        };
        let mut wanted: Vec<usize> = keep(&is_drop);
        wanted.extend(keep(&|t| t == abi::EVENT_POLICY_VERDICT));
        wanted.sort_unstable();
        for ev in wanted.into_iter().map(|i| &events[i]) {
            let mut f = Flow::from_event(ev);
            f.set_wall_time(self.wall_offset_ns);
            match ev.hdr.r#type {
                t if is_drop(t) => {
                    let mut summary = String::new();
                    let _ = dpdbg::flow::write_summary(&mut summary, &f.packet);
                    let reason = if t == abi::EVENT_DROP {
                        format!("{} ({})", Reason(ev.hdr.subtype).text(), ev.hdr.subtype)
                    } else {
                        format!("kernel: {} ({})", dpdbg::kdrop::reason_name(ev.hdr.subtype), ev.hdr.subtype)
                    };
                    self.drops.push_front(DropRow {
                        time: f.time.clone().unwrap_or_default(),
                        reason,
                        endpoint: ev.hdr.endpoint_id,
                        endpoint_name: self
                            .names
                            .pods
                            .get(&ev.hdr.endpoint_id)
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        summary,
                        event: ev.clone(),
                        explanation: None,
                    });
                    // The selection stays on the packet it was on.
                    if self.tab == Tab::Drops && self.detail {
                        let i = &mut self.selected[Tab::Drops.index()];
                        *i = (*i + 1).min(FEED - 1);
                    }
                }
                abi::EVENT_POLICY_VERDICT => {
                    let mut line = String::new();
                    let name = self.names.pods.get(&ev.hdr.endpoint_id).map(|p| p.to_string());
                    let _ =
                        write_line_with(&mut line, &f, LineOptions { endpoint: name.as_deref(), ..Default::default() });
                    self.verdicts.push_front(line);
                }
                _ => {}
            }
        }
        self.drops.truncate(FEED);
        self.verdicts.truncate(FEED);
    }

    fn metrics(&mut self, metrics: &[dpdbg::maps::Metric], dt: Option<f64>) {
        let (mut fwd, mut dropped) = (0u64, 0u64);
        let mut by_reason: HashMap<u8, u64> = HashMap::new();
        for m in metrics {
            let r = Reason(m.reason);
            if m.reason == Reason::FORWARDED.0 {
                fwd += m.packets;
            } else if r.is_drop() {
                dropped += m.packets;
                *by_reason.entry(m.reason).or_default() += m.packets;
            }
        }
        let prev = self.prev_metrics.take();
        if let (Some((pf, pd, _)), Some(dt)) = (&prev, dt)
            && dt > 0.0
        {
            push(&mut self.fwd_history, rate(fwd, Some(*pf), Some(dt)));
            push(&mut self.drop_history, rate(dropped, Some(*pd), Some(dt)));
        }
        let mut reasons: Vec<(String, u64, f64)> = by_reason
            .iter()
            .map(|(r, n)| {
                let before = prev.as_ref().and_then(|p| p.2.get(r).copied());
                (format!("{} ({r})", Reason(*r).text()), *n, rate(*n, before.or(prev.as_ref().map(|_| 0)), dt))
            })
            .collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        self.drops_by_reason = reasons;
        self.prev_metrics = Some((fwd, dropped, by_reason));
    }

    fn conntrack(&mut self, ct: Vec<CtView>, dt: Option<f64>) {
        // A hash map read twice gives its entries in the same order unless it
        // changed in between: the entry at the same place is checked first,
        // and only a table that moved is indexed by hashing.
        let prev = std::mem::replace(&mut self.prev_ct, Vec::with_capacity(ct.len()));
        let mut index: Option<HashMap<CtId, u64>> = None;
        let mut rows = Vec::with_capacity(ct.len());
        for (i, v) in ct.into_iter().enumerate() {
            let id = ct_id(&v);
            let (packets, bytes) = (v.packets_fwd + v.packets_rev, v.bytes_fwd + v.bytes_rev);
            let before = match prev.get(i) {
                Some((p, b)) if *p == id => Some(*b),
                _ => index.get_or_insert_with(|| prev.iter().copied().collect()).get(&id).copied(),
            };
            let bps = rate(bytes, before, dt);
            self.prev_ct.push((id, bytes));
            rows.push(CtRow { view: v, packets, bytes, bps });
        }
        let mut talkers: Vec<(String, f64)> = rows
            .iter()
            .filter(|r| r.bps > 0.0)
            .map(|r| {
                let v = &r.view;
                // A named endpoint by its pod, as Hubble writes it.
                let side = |ip: IpAddr, port: u16| match self.names.pod_at(ip) {
                    Some(p) => format!("{p}:{port}"),
                    None => format!("{ip}:{port}"),
                };
                (format!("{} -> {} {}", side(v.src, v.sport), side(v.dst, v.dport), proto_name(v.proto)), r.bps)
            })
            .collect();
        talkers.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        talkers.truncate(5);
        self.talkers = talkers;
        self.ct = rows;
    }

    fn endpoints(&mut self, eps: &[dpdbg::maps::Endpoint], ifnames: &[(u32, String)], dt: Option<f64>) {
        // Forwarded traffic of an endpoint is what its conntrack entries counted.
        let mut by_id: Vec<EndpointRow> = Vec::new();
        for e in eps {
            if let Some(r) = by_id.iter_mut().find(|r| r.id == e.endpoint_id) {
                r.addresses.push(e.ip);
                continue;
            }
            by_id.push(EndpointRow {
                id: e.endpoint_id,
                name: self.names.pods.get(&e.endpoint_id).map(|p| p.to_string()).unwrap_or_default(),
                identity: e.identity,
                addresses: vec![e.ip],
                interface: ifnames
                    .iter()
                    .find(|(i, _)| *i == e.ifindex)
                    .map_or_else(|| format!("ifindex {}", e.ifindex), |(_, n)| n.clone()),
                enforcement: e.enforcement(),
                fwd_packets: 0,
                fwd_bytes: 0,
                drop_packets: 0,
                drop_bytes: 0,
                fwd_pps: 0.0,
                drop_pps: 0.0,
            });
        }
        for r in &mut by_id {
            for c in &self.ct {
                if r.addresses.contains(&c.view.src) || r.addresses.contains(&c.view.dst) {
                    r.fwd_packets += c.packets;
                    r.fwd_bytes += c.bytes;
                }
            }
            let (dp, db) = self.ep_drops.get(&r.id).copied().unwrap_or_default();
            r.drop_packets = dp;
            r.drop_bytes = db;
            let before = self.prev_eps.get(&r.id).copied();
            r.fwd_pps = rate(r.fwd_packets, before.map(|b| b.0), dt);
            r.drop_pps = rate(r.drop_packets, before.map(|b| b.1), dt);
        }
        by_id.sort_by_key(|r| r.id);
        self.prev_eps = by_id.iter().map(|r| (r.id, (r.fwd_packets, r.drop_packets))).collect();
        self.endpoints = by_id;
    }

    fn rules(&mut self, rules: &[(abi::PolicyKey, abi::PolicyValue)], dt: Option<f64>) {
        let mut rows: Vec<RuleRow> = rules
            .iter()
            .map(|(k, v)| {
                let rule = dpdbg::maps::describe_rule(k);
                let pps = rate(v.packets, self.prev_rules.get(&rule).copied(), dt);
                RuleRow {
                    endpoint_name: self.names.pods.get(&k.endpoint_id).map(|p| p.to_string()).unwrap_or_default(),
                    peer_labels: if k.identity == 0 {
                        String::new()
                    } else {
                        self.names.labels_of(k.identity).join(",")
                    },
                    rule,
                    action: if v.action == abi::POLICY_DENY { "deny" } else { "allow" },
                    packets: v.packets,
                    bytes: v.bytes,
                    pps,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.rule.cmp(&b.rule));
        self.prev_rules = rows.iter().map(|r| (r.rule.clone(), r.packets)).collect();
        self.rules = rows;
    }

    fn programs(&mut self, progs: &[dpdbg::progs::ProgSummary], dt: Option<f64>) {
        let mut rows: Vec<ProgRow> = progs
            .iter()
            .map(|p| {
                let (runs, ns) = (p.run_count.unwrap_or(0), p.run_time_ns.unwrap_or(0));
                let before = self.prev_progs.get(&p.id).copied();
                let runs_per_s = rate(runs, before.map(|b| b.0), dt);
                let ns_per_s = rate(ns, before.map(|b| b.1), dt);
                let d_runs = before.map_or(0, |b| runs.saturating_sub(b.0));
                let d_ns = before.map_or(0, |b| ns.saturating_sub(b.1));
                ProgRow {
                    id: p.id,
                    prog_type: p.prog_type,
                    name: p.name.clone(),
                    attached: p.attached.join(", "),
                    runs,
                    runs_per_s,
                    avg_ns: if d_runs > 0 { d_ns as f64 / d_runs as f64 } else { 0.0 },
                    // Nanoseconds of run time per second of wall time, as bpftop counts it.
                    cpu_pct: ns_per_s / 1e7,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct).then(a.id.cmp(&b.id)));
        self.prev_progs =
            progs.iter().map(|p| (p.id, (p.run_count.unwrap_or(0), p.run_time_ns.unwrap_or(0)))).collect();
        self.programs = rows;
    }
}

fn push(h: &mut VecDeque<f64>, v: f64) {
    if h.len() == HISTORY {
        h.pop_front();
    }
    h.push_back(v);
}
