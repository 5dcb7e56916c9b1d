//! `serve --metrics ADDR`: the Prometheus exposition of the node, on an HTTP
//! listener of its own (`GET /metrics`), encoded by the `prometheus-client`
//! crate: the Prometheus text format (0.0.4), or OpenMetrics when the
//! scraper asks for it (Prometheus does).
//!
//! Two sources, with cilium's and Hubble's names where the meaning is theirs:
//! - the datapath, read at each scrape: the metrics map (one batch lookup),
//!   the fill of the maps that hold entries, the programs' run counters.
//!   Absent while no datapath is loaded.
//! - the server itself, counted as it goes: the flows it read (Hubble's flow,
//!   drop and policy metrics, from each record's header), its subscribers
//!   and what they lost, its flow buffer (`Counters`, in `Shared`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dpdbg::abi::{self, EventHdr, Reason};
use dpdbg::kdrop::EVENT_KERNEL_DROP;
use dpdbg::maps::scrape;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::bytes::Bytes;
use tokio::sync::watch;

use super::ServeError;
use super::store::Shared;

/// A streaming subscriber's kind: Observer followers (GetFlows with
/// follow), dpdbg.v1.Events streams, monitor socket connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Observer = 0,
    Events = 1,
    Monitor = 2,
}

const KINDS: [(Kind, &str); 3] = [(Kind::Observer, "observer"), (Kind::Events, "events"), (Kind::Monitor, "monitor")];

/// Protocols as Hubble's FlowProtocol names them (by the header's IP protocol).
const PROTOCOLS: [&str; 6] = ["TCP", "UDP", "ICMPv4", "ICMPv6", "SCTP", "Unknown L4"];
/// Hubble's verdict names, by dpdbg's (and Hubble's) numbers 0 to 4.
const VERDICTS: [&str; 5] = ["VERDICT_UNKNOWN", "FORWARDED", "DROPPED", "ERROR", "AUDIT"];
/// hubble_flows_processed_total's type and subtype of each class of event.
const FLOW_CLASSES: [(&str, &str); 6] = [
    ("Drop", ""),
    ("Trace", "to-endpoint"),
    ("Trace", "from-endpoint"),
    // An observation point the datapath does not use: Hubble's table has no name for it either.
    ("Trace", ""),
    ("PolicyVerdict", ""),
    ("Unknown", ""),
];
/// Policy match kinds (dpdbg's numbers), as hubble_policy_verdicts_total spells them.
const MATCHES: usize = 5;
const DIRECTIONS: [&str; 2] = ["ingress", "egress"];

const FLOW_SLOTS: usize = FLOW_CLASSES.len() * VERDICTS.len() * PROTOCOLS.len();
const DROP_SLOTS: usize = 256 * PROTOCOLS.len();
const VERDICT_SLOTS: usize = DIRECTIONS.len() * MATCHES * VERDICTS.len();

/// What the server counts itself, for the exposition. The flow counters
/// have one writer, the ring's reader thread, which adds with a plain load
/// and store (no locked instruction per flow); readers see them as they stand.
pub(super) struct Counters {
    flows: [AtomicU64; FLOW_SLOTS],
    drops: [AtomicU64; DROP_SLOTS],
    /// Kernel drops (type 8) by the kernel's reason: its numbers are not cilium's.
    kernel_drops: [AtomicU64; DROP_SLOTS],
    verdicts: [AtomicU64; VERDICT_SLOTS],
    subscribers: [AtomicI64; 3],
    lost: [AtomicU64; 3],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            flows: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            kernel_drops: std::array::from_fn(|_| AtomicU64::new(0)),
            verdicts: std::array::from_fn(|_| AtomicU64::new(0)),
            subscribers: Default::default(),
            lost: Default::default(),
        }
    }
}

/// Adds one where the caller is the counter's only writer.
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

fn protocol(proto: u8) -> usize {
    match proto {
        6 => 0,
        17 => 1,
        1 => 2,
        58 => 3,
        132 => 4,
        _ => 5,
    }
}

impl Counters {
    /// One flow the server read, by its header alone. Only the ring's
    /// reader thread calls this.
    pub(super) fn flow(&self, h: &EventHdr) {
        let p = protocol(h.proto);
        let v = if (h.verdict as usize) < VERDICTS.len() { h.verdict as usize } else { 0 };
        let class = match (h.r#type, h.subtype) {
            // A kernel drop is a drop to Hubble, as observe shows it.
            (abi::EVENT_DROP | EVENT_KERNEL_DROP, _) => 0,
            (abi::EVENT_TRACE, abi::TRACE_TO_ENDPOINT) => 1,
            (abi::EVENT_TRACE, abi::TRACE_FROM_ENDPOINT) => 2,
            (abi::EVENT_TRACE, _) => 3,
            (abi::EVENT_POLICY_VERDICT, _) => 4,
            _ => 5,
        };
        bump(&self.flows[(class * VERDICTS.len() + v) * PROTOCOLS.len() + p]);
        match h.r#type {
            abi::EVENT_DROP => bump(&self.drops[h.subtype as usize * PROTOCOLS.len() + p]),
            EVENT_KERNEL_DROP => bump(&self.kernel_drops[h.subtype as usize * PROTOCOLS.len() + p]),
            // As Hubble does: the host may reach any local endpoint, its verdicts are not counted.
            abi::EVENT_POLICY_VERDICT if h.src_identity != abi::IDENTITY_HOST => {
                let d = usize::from(h.direction == abi::DIR_EGRESS);
                let m = if (h.subtype as usize) < MATCHES { h.subtype as usize } else { abi::MATCH_NONE as usize };
                bump(&self.verdicts[(d * MATCHES + m) * VERDICTS.len() + v]);
            }
            _ => {}
        }
    }

    /// What a subscriber of `kind` lost to its full queue.
    pub(super) fn lost(&self, kind: Kind, n: u64) {
        if n > 0 {
            self.lost[kind as usize].fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A streaming subscriber, counted while it lives.
pub(super) struct Subscriber {
    counters: Arc<Counters>,
    kind: Kind,
}

impl Subscriber {
    pub(super) fn new(counters: &Arc<Counters>, kind: Kind) -> Subscriber {
        counters.subscribers[kind as usize].fetch_add(1, Ordering::Relaxed);
        Subscriber { counters: Arc::clone(counters), kind }
    }

    pub(super) fn lost(&self, n: u64) {
        self.counters.lost(self.kind, n);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.counters.subscribers[self.kind as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A map count is used again for this many times as long as it took: the
/// counting spends about 1 % of a core at most, whatever the scrape
/// interval (a 1M-entry conntrack map, 0.4 s to count, is counted at most
/// every 40 s; the lab's maps at every scrape).
const COUNT_REUSE: u32 = 100;

/// Connections served at once; more are closed as they come.
const MAX_CONNECTIONS: usize = 16;

type Labels = Vec<(&'static str, Cow<'static, str>)>;

fn labels<const N: usize>(pairs: [(&'static str, &'static str); N]) -> Labels {
    pairs.into_iter().map(|(k, v)| (k, Cow::Borrowed(v))).collect()
}

/// A map's last count: of which map (its id), when, how long it took, what it found.
struct Count {
    id: u32,
    at: Instant,
    took: Duration,
    fill: scrape::MapFill,
}

/// The exposition's maker: what a scrape reads and what it keeps between scrapes.
struct Exporter {
    shared: Arc<Shared>,
    bpffs: PathBuf,
    /// The last count of each map.
    counts: Mutex<HashMap<&'static str, Count>>,
    /// The last datapath read error said on stderr (said again only when it changes).
    said: Mutex<Option<String>>,
}

impl Exporter {
    /// Says a datapath read that failed, once per distinct failure.
    fn note(&self, e: &dpdbg::Error) {
        let e = e.to_string();
        let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
        if said.as_ref() != Some(&e) {
            eprintln!("dpdbg serve: --metrics: reading the datapath: {e} (its metrics are left out of the scrape)");
            *said = Some(e);
        }
    }

    /// The registry of one scrape. A blocking call: it reads the maps.
    fn registry(&self) -> Registry {
        let mut reg = Registry::default();
        let loaded = dpdbg::datapath::Pins::new(&self.bpffs).is_loaded();
        if loaded && self.datapath(&mut reg) {
            // A failure said before is said again should it come back.
            *self.said.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        self.serve(&mut reg, loaded);
        reg
    }

    /// The datapath's metrics, each family registered only once read whole:
    /// a read that fails (an unload meanwhile) leaves it out, never half of
    /// it. Whether every read succeeded.
    fn datapath(&self, reg: &mut Registry) -> bool {
        let mut whole = true;
        let mut failed = |e: dpdbg::Error| {
            self.note(&e);
            whole = false;
        };
        match scrape::metrics(&self.bpffs) {
            Ok(rows) => self.packets(reg, &rows),
            Err(e) => failed(e),
        }
        match self.fills() {
            Ok(fills) => {
                let pressure = Family::<Labels, Gauge<f64, AtomicU64>>::default();
                let ct = Family::<Labels, Gauge>::default();
                for f in &fills {
                    pressure.get_or_create(&labels([("map_name", f.name)])).set(f.pressure());
                    let family = match f.name {
                        "ct4" => "ipv4",
                        "ct6" => "ipv6",
                        _ => continue,
                    };
                    ct.get_or_create(&labels([("family", family)])).set(f.entries as i64);
                }
                reg.register(
                    "cilium_bpf_map_pressure",
                    "Map pressure is defined as a ratio of the required map size compared to its configured size (entries over max_entries, for each of the datapath's maps that hold entries)",
                    pressure,
                );
                reg.register("dpdbg_conntrack_entries", "Conntrack entries now, by address family", ct);
            }
            Err(e) => failed(e),
        }
        match scrape::prog_runs(&self.bpffs) {
            // Present once the kernel has counted runs: statistics are (or were) on.
            Ok(progs) if progs.iter().any(|p| p.run_count > 0) => {
                let runs = Family::<Labels, Counter>::default();
                let secs = Family::<Labels, Counter<f64, AtomicU64>>::default();
                for p in &progs {
                    runs.get_or_create(&labels([("program", p.name)])).inc_by(p.run_count);
                    secs.get_or_create(&labels([("program", p.name)])).inc_by(p.run_time_ns as f64 / 1e9);
                }
                reg.register(
                    "dpdbg_bpf_prog_runs",
                    "Runs of the datapath's programs the kernel counted while its statistics were on (kernel.bpf_stats_enabled)",
                    runs,
                );
                reg.register(
                    "dpdbg_bpf_prog_run_seconds",
                    "Time the datapath's programs ran, counted while the kernel's statistics were on",
                    secs,
                );
            }
            Ok(_) => {}
            Err(e) => failed(e),
        }
        whole
    }

    /// The metrics map's rows as cilium's packet metrics, and the events
    /// the datapath could not write (242) or readers could not decode (243).
    fn packets(&self, reg: &mut Registry, rows: &[dpdbg::maps::Metric]) {
        let fwd_count = Family::<Labels, Counter>::default();
        let fwd_bytes = Family::<Labels, Counter>::default();
        let drop_count = Family::<Labels, Counter>::default();
        let drop_bytes = Family::<Labels, Counter>::default();
        let (mut lost, mut undecodable) = (0u64, 0u64);
        for m in rows {
            // cilium's direction label values.
            let direction = if m.direction == "egress" { "EGRESS" } else { "INGRESS" };
            let reason = Reason(m.reason);
            match reason {
                Reason::EVENT_LOST => lost = lost.saturating_add(m.packets),
                Reason::EVENT_UNDECODABLE => undecodable = undecodable.saturating_add(m.packets),
                r if r.is_drop() => {
                    let l = labels([("reason", m.reason_text), ("direction", direction)]);
                    drop_count.get_or_create(&l).inc_by(m.packets);
                    drop_bytes.get_or_create(&l).inc_by(m.bytes);
                }
                _ => {
                    let l = labels([("direction", direction)]);
                    fwd_count.get_or_create(&l).inc_by(m.packets);
                    fwd_bytes.get_or_create(&l).inc_by(m.bytes);
                }
            }
        }
        reg.register("cilium_forward_count", "Total forwarded packets, tagged by ingress/egress direction", fwd_count);
        reg.register("cilium_forward_bytes", "Total forwarded bytes, tagged by ingress/egress direction", fwd_bytes);
        reg.register(
            "cilium_drop_count",
            "Total dropped packets, tagged by drop reason and ingress/egress direction",
            drop_count,
        );
        reg.register(
            "cilium_drop_bytes",
            "Total dropped bytes, tagged by drop reason and ingress/egress direction",
            drop_bytes,
        );
        let lost_events = Family::<Labels, Counter>::default();
        lost_events.get_or_create(&labels([("source", "perf_event_ring_buffer")])).inc_by(lost);
        reg.register(
            "hubble_lost_events",
            "Number of lost events: events the datapath could not write, its ring buffer full (reason 242)",
            lost_events,
        );
        let bad = Counter::<u64>::default();
        bad.inc_by(undecodable);
        reg.register(
            "dpdbg_events_undecodable",
            "Event records a reader could not decode, as readers counted them in the metrics map (reason 243)",
            bad,
        );
    }

    /// The fill of each map that holds entries; a count is reused while it
    /// is younger than COUNT_REUSE times what it took.
    fn fills(&self) -> dpdbg::Result<Vec<scrape::MapFill>> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for name in scrape::entry_maps() {
            let map = scrape::EntryMap::open(&self.bpffs, name)?;
            match counts.get(name) {
                Some(c) if c.id == map.id && c.at.elapsed() < c.took * COUNT_REUSE => out.push(c.fill),
                _ => {
                    let at = Instant::now();
                    let fill = map.count()?;
                    counts.insert(name, Count { id: map.id, at, took: at.elapsed(), fill });
                    out.push(fill);
                }
            }
        }
        Ok(out)
    }

    /// What the server counted: the flows it read, its subscribers, its buffer.
    fn serve(&self, reg: &mut Registry, loaded: bool) {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let flows = Family::<Labels, Counter>::default();
        for (class, (ty, sub)) in FLOW_CLASSES.iter().enumerate() {
            for (v, verdict) in VERDICTS.iter().enumerate() {
                for (p, proto) in PROTOCOLS.iter().enumerate() {
                    let n = get(&c.flows[(class * VERDICTS.len() + v) * PROTOCOLS.len() + p]);
                    if n > 0 {
                        let l = labels([("protocol", *proto), ("type", *ty), ("subtype", *sub), ("verdict", *verdict)]);
                        flows.get_or_create(&l).inc_by(n);
                    }
                }
            }
        }
        reg.register("hubble_flows_processed", "Total number of flows processed", flows);
        let drops = Family::<Labels, Counter>::default();
        for reason in 0..256usize {
            for (p, proto) in PROTOCOLS.iter().enumerate() {
                let n = get(&c.drops[reason * PROTOCOLS.len() + p]);
                if n > 0 {
                    // Hubble's label is the DropReason enum's name; a number the enum lacks prints as the number.
                    let name = match crate::flow::DropReason::try_from(reason as i32) {
                        Ok(r) => Cow::Borrowed(r.as_str_name()),
                        Err(_) => Cow::Owned(reason.to_string()),
                    };
                    drops.get_or_create(&vec![("reason", name), ("protocol", Cow::Borrowed(*proto))]).inc_by(n);
                }
                // The kernel's reason by its name (NO_SOCKET, ...): Hubble has no kernel drops.
                let n = get(&c.kernel_drops[reason * PROTOCOLS.len() + p]);
                if n > 0 {
                    let name = Cow::Borrowed(dpdbg::kdrop::reason_name(reason as u8));
                    drops.get_or_create(&vec![("reason", name), ("protocol", Cow::Borrowed(*proto))]).inc_by(n);
                }
            }
        }
        reg.register("hubble_drop", "Number of drops", drops);
        let verdicts = Family::<Labels, Counter>::default();
        for (d, direction) in DIRECTIONS.iter().enumerate() {
            for m in 0..MATCHES {
                for (v, verdict) in VERDICTS.iter().enumerate() {
                    let n = get(&c.verdicts[(d * MATCHES + m) * VERDICTS.len() + v]);
                    if n > 0 {
                        let l = vec![
                            ("direction", Cow::Borrowed(*direction)),
                            ("match", Cow::Owned(abi::match_kind_text(m as u8).to_ascii_lowercase())),
                            ("action", Cow::Owned(verdict.to_ascii_lowercase())),
                        ];
                        verdicts.get_or_create(&l).inc_by(n);
                    }
                }
            }
        }
        reg.register("hubble_policy_verdicts", "Total number of Cilium network policy verdicts", verdicts);
        let subscribers = Family::<Labels, Gauge>::default();
        let lost = Family::<Labels, Counter>::default();
        for (kind, name) in KINDS {
            subscribers
                .get_or_create(&labels([("kind", name)]))
                .set(c.subscribers[kind as usize].load(Ordering::Relaxed));
            lost.get_or_create(&labels([("kind", name)])).inc_by(get(&c.lost[kind as usize]));
        }
        reg.register(
            "dpdbg_serve_subscribers",
            "Streaming subscribers now: Observer followers, dpdbg.v1.Events streams, monitor socket connections",
            subscribers,
        );
        reg.register(
            "dpdbg_serve_subscriber_lost",
            "Flows or records a subscriber of this kind did not get because its queue was full (it was told)",
            lost,
        );
        let buffered = Gauge::<i64>::default();
        buffered.set(self.shared.buffer.lock().unwrap_or_else(|p| p.into_inner()).len() as i64);
        reg.register("dpdbg_serve_flows_buffered", "Flows kept for clients that ask for the last N", buffered);
        let capacity = Gauge::<i64>::default();
        capacity.set(self.shared.capacity as i64);
        reg.register("dpdbg_serve_flows_buffer_capacity", "Flows the buffer keeps at most (--buffer)", capacity);
        let bad = Counter::<u64>::default();
        bad.inc_by(get(&self.shared.undecodable));
        reg.register("dpdbg_serve_records_undecodable", "Records the server read but could not decode", bad);
        let up = Gauge::<i64>::default();
        up.set(i64::from(loaded));
        reg.register("dpdbg_serve_datapath_loaded", "1 while a whole datapath is loaded under the server's bpffs", up);
    }

    /// The exposition in the format asked for.
    fn exposition(&self, openmetrics: bool) -> String {
        let reg = self.registry();
        let mut out = String::new();
        let r = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &reg)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)
        };
        // Writing to a String does not fail.
        debug_assert!(r.is_ok());
        out
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the metrics listener: done before anything else the server makes,
/// so an address in use stops it with nothing to undo.
pub(super) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io { what: format!("--metrics {addr}: binding the metrics listener"), source: e })
}

/// Serves `GET /metrics` on `listener` until `down`.
pub(super) fn spawn(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    bpffs: &Path,
    mut down: watch::Receiver<bool>,
) {
    let exporter = Arc::new(Exporter {
        shared,
        bpffs: bpffs.to_path_buf(),
        counts: Mutex::new(HashMap::new()),
        said: Mutex::new(None),
    });
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = down.changed() => return,
            };
            let Ok((stream, _)) = conn else {
                // Out of file descriptors, say: the next connection may fare better.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(permit) = Arc::clone(&open).try_acquire_owned() else { continue };
            let exporter = Arc::clone(&exporter);
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |req| handle(req, Arc::clone(&exporter)));
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn handle(req: Request<Incoming>, exporter: Arc<Exporter>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(text(StatusCode::NOT_FOUND, "dpdbg serve: the metrics are at /metrics\n"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD /metrics\n");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let openmetrics = req
        .headers()
        .get(ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let body = match tokio::task::spawn_blocking(move || exporter.exposition(openmetrics)).await {
        Ok(b) => b,
        Err(_) => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "dpdbg serve: the scrape failed\n")),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let kind = if openmetrics { OPENMETRICS } else { prometheus_client::encoding::prometheus_text::CONTENT_TYPE };
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(ty: u8, subtype: u8, verdict: u8, proto: u8, direction: u8, src_identity: u32) -> EventHdr {
        EventHdr {
            timestamp_ns: 0,
            r#type: ty,
            subtype,
            verdict,
            ct_state: 0,
            direction,
            family: 4,
            proto,
            flags: 0,
            ifindex: 0,
            endpoint_id: 0,
            src_identity,
            dst_identity: 0,
            orig_len: 0,
            cap_len: 0,
        }
    }

    #[test]
    fn flows_are_counted_by_hubbles_labels() {
        let c = Counters::default();
        c.flow(&hdr(abi::EVENT_DROP, 133, abi::VERDICT_DROPPED, 6, abi::DIR_INGRESS, 1000));
        c.flow(&hdr(abi::EVENT_DROP, 133, abi::VERDICT_DROPPED, 6, abi::DIR_INGRESS, 1000));
        c.flow(&hdr(EVENT_KERNEL_DROP, 2, abi::VERDICT_DROPPED, 17, abi::DIR_INGRESS, 1000));
        c.flow(&hdr(abi::EVENT_TRACE, abi::TRACE_FROM_ENDPOINT, abi::VERDICT_FORWARDED, 58, abi::DIR_EGRESS, 1000));
        c.flow(&hdr(abi::EVENT_POLICY_VERDICT, abi::MATCH_L3_L4, abi::VERDICT_FORWARDED, 17, abi::DIR_EGRESS, 1000));
        // The host's verdicts are not counted as policy verdicts (Hubble's rule), but are flows.
        c.flow(&hdr(abi::EVENT_POLICY_VERDICT, abi::MATCH_ALL, abi::VERDICT_FORWARDED, 17, abi::DIR_EGRESS, 1));
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let at = |class: usize, v: usize, p: usize| get(&c.flows[(class * VERDICTS.len() + v) * PROTOCOLS.len() + p]);
        assert_eq!(at(0, 2, 0), 2, "Drop, DROPPED, TCP");
        assert_eq!(at(2, 1, 3), 1, "Trace from-endpoint, FORWARDED, ICMPv6");
        assert_eq!(at(4, 1, 1), 2, "PolicyVerdict, FORWARDED, UDP");
        assert_eq!(get(&c.drops[133 * PROTOCOLS.len()]), 2);
        assert_eq!(at(0, 2, 1), 1, "a kernel drop is a Drop (UDP)");
        assert_eq!(get(&c.kernel_drops[2 * PROTOCOLS.len() + 1]), 1, "by the kernel's reason, apart from cilium's");
        let verdict = |d: usize, m: u8, v: usize| get(&c.verdicts[(d * MATCHES + m as usize) * VERDICTS.len() + v]);
        assert_eq!(verdict(1, abi::MATCH_L3_L4, 1), 1);
        assert_eq!(verdict(1, abi::MATCH_ALL, 1), 0, "the host's verdict is left out");
        assert_eq!(c.flows.iter().map(get).sum::<u64>(), 6);
    }

    #[test]
    fn subscribers_are_counted_while_they_live() {
        let c = Arc::new(Counters::default());
        let a = Subscriber::new(&c, Kind::Monitor);
        let b = Subscriber::new(&c, Kind::Monitor);
        b.lost(7);
        drop(b);
        assert_eq!(c.subscribers[Kind::Monitor as usize].load(Ordering::Relaxed), 1);
        assert_eq!(c.lost[Kind::Monitor as usize].load(Ordering::Relaxed), 7);
        drop(a);
        assert_eq!(c.subscribers[Kind::Monitor as usize].load(Ordering::Relaxed), 0);
    }
}
