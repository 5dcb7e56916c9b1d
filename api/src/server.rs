//! `dpdbg serve`: the one consumer of the datapath's events, keeping the
//! last flows for late joiners and serving Hubble's Observer API to any
//! number of clients over a unix socket (and TCP when asked).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dpdbg::datapath::{self, Pins};
use dpdbg::events::{EventReader, view};
use dpdbg::flow::{Filters, Flow as Decoded};
use prost::bytes::{Bytes, BytesMut};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::encoded::EncodedResponse;
use crate::events::events_server::{Events, EventsServer};
use crate::events::{EventBatch, SubscribeRequest};
use crate::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNodesRequest, GetNodesResponse, Node, NodeState, ServerStatusRequest,
    ServerStatusResponse, get_flows_response::ResponseTypes,
};
use crate::observer_encoded::observer_server::{Observer, ObserverServer};
use crate::{filter, flow};

/// Where and how `dpdbg serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bpffs: PathBuf,
    pub socket: PathBuf,
    pub listen: Option<SocketAddr>,
    /// How many flows are kept for clients that ask for the last N.
    pub buffer: usize,
    /// Conntrack garbage collection; zero turns it off.
    pub ct_gc_interval: Duration,
    /// dpdbg's commands for `--server` (dpdbg.v1.Commands); None leaves the service out.
    pub commands: Option<crate::commands::Runner>,
    /// TLS on the TCP listener (the unix socket is guarded by its mode).
    pub tls: Option<ServerTls>,
    /// The group the unix socket belongs to (its owner is the server's user, root).
    pub socket_gid: Option<u32>,
}

/// The server's certificate and key (PEM), and the CA its clients' certificates
/// must chain to (mutual TLS) when one is given.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Core(#[from] dpdbg::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What the server saw, reported when it stops.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServeSummary {
    pub seen_flows: u64,
    pub undecodable: u64,
}

/// One flow as the server keeps it: what filters look at, and the response
/// every subscriber is sent, encoded once.
#[derive(Clone)]
struct Stored {
    seq: u64,
    /// The record as the ring held it (a slice of its drain's one buffer).
    rec: Bytes,
    /// Wall clock minus CLOCK_MONOTONIC when it was read: the flow's time.
    offset: i128,
    /// The event decoded and its Hubble response encoded, made the first
    /// time anyone needs them: a server nobody asks for flows only copies
    /// records (a monitor beside it reads those), and the last N flows a
    /// late joiner may ask for are decoded when it asks.
    flow: OnceLock<Option<Materialized>>,
}

#[derive(Clone)]
struct Materialized {
    response: EncodedResponse,
}

impl Stored {
    fn timestamp_ns(&self) -> u64 {
        self.rec.get(..8).map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
    }

    /// The flow, decoded and encoded once; None for a record that does not decode.
    fn flow(&self, shared: &Shared) -> Option<&Materialized> {
        self.materialize(shared, None)
    }

    /// As `flow`, encoding into `out` (one buffer for a batch) when given.
    fn materialize(&self, shared: &Shared, out: Option<&mut BytesMut>) -> Option<&Materialized> {
        self.flow
            .get_or_init(|| {
                let ev = view(&self.rec).ok()?;
                // A shared name: a reference count per flow, not a String.
                // The last one is kept at hand: a flood is mostly one
                // interface, and the map's lock and hash were a tenth of a flow.
                thread_local! {
                    static LAST_IF: std::cell::RefCell<Option<(u32, Arc<str>)>> = const { std::cell::RefCell::new(None) };
                }
                let ifindex = ev.hdr.ifindex;
                let ifname = LAST_IF.with_borrow_mut(|last| match last {
                    Some((i, name)) if *i == ifindex => Arc::clone(name),
                    _ => {
                        let mut names = shared.ifnames.lock().unwrap_or_else(|p| p.into_inner());
                        let name = Arc::clone(
                            names.entry(ifindex).or_insert_with(|| dpdbg::sys::ifname(ifindex).unwrap_or_default().into()),
                        );
                        *last = Some((ifindex, Arc::clone(&name)));
                        name
                    }
                });
                let d = Decoded::from_event(ev);
                // Written as protobuf straight from the event (wire.rs, held
                // byte for byte to convert::to_flow's encoding by its test).
                thread_local! {
                    static SCRATCH: std::cell::RefCell<(Vec<u8>, String)> = const {
                        std::cell::RefCell::new((Vec::new(), String::new()))
                    };
                }
                let response = SCRATCH.with_borrow_mut(|(bytes, line)| {
                    bytes.clear();
                    crate::wire::flow_response(bytes, line, ev, &d, self.offset, &shared.node, &ifname);
                    match out {
                        Some(buf) => EncodedResponse::into_buf(bytes, buf),
                        None => EncodedResponse(Bytes::copy_from_slice(bytes)),
                    }
                });
                Some(Materialized { response })
            })
            .as_ref()
    }
}

/// Bytes per chunk the reader copies records into: small, because a
/// drain's last chunk is handed on part-filled and the flow buffer's records
/// keep theirs alive (256 KiB chunks had the buffer pin hundreds of them).
const RECORD_CHUNK: usize = 16 << 10;

/// Chunks kept for reuse at most (64 MiB).
const POOL_MAX: usize = 4096;

/// The reader's chunks, back for reuse once the last record sliced from one
/// is dropped, wherever that happens (a sent message, the flow buffer).
#[derive(Clone, Default)]
struct ChunkPool(Arc<Mutex<Vec<Vec<u8>>>>);

/// A chunk lent to the records sliced from it.
struct Pooled {
    buf: Vec<u8>,
    pool: ChunkPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut free = self.pool.0.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < POOL_MAX {
            free.push(buf);
        }
    }
}

impl ChunkPool {
    fn get(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_else(|| Vec::with_capacity(RECORD_CHUNK))
    }

    /// The chunk's records (`spans`, taken) as slices of it, onto `records`.
    fn seal(&self, buf: Vec<u8>, spans: &mut Vec<(usize, usize)>, records: &mut Vec<Bytes>) {
        if spans.is_empty() {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(buf);
            return;
        }
        let chunk = Bytes::from_owner(Pooled { buf, pool: self.clone() });
        records.extend(spans.drain(..).map(|(at, n)| chunk.slice(at..at + n)));
    }
}

/// Flows read in one drain of the ring, handed to followers together: one
/// wake-up per batch rather than per flow.
type Batch = Arc<Vec<Stored>>;

/// Batches (up to BATCH_MAX flows each) queued for one follower at most.
const FOLLOW_QUEUE: usize = 16;

/// EventBatch messages queued for one Events subscriber at most (16 Ki
/// records, about 5 MB); past that its records are dropped and counted.
const EVENTS_QUEUE: usize = 128;

/// Records per EventBatch message: at most 128 × (header + 256 snap bytes),
/// about 37 KiB, so each message's encoding stays a "medium" allocation too.
const RAW_PIECE: usize = 128;

/// One drain's records as Events messages. A drain can hold tens of
/// thousands of records: they go in pieces, well under gRPC's 4 MiB message
/// limit; the loss is told once, before them.
fn event_batches(records: &[Bytes], mut lost: u64) -> Vec<EventBatch> {
    records
        .chunks(RAW_PIECE)
        .map(|piece| EventBatch { records: piece.to_vec(), lost: std::mem::take(&mut lost) })
        .collect()
}

/// The health service name that is SERVING only while a datapath is loaded.
pub const READY_SERVICE: &str = "observer.Observer";

/// Most flows in one batch, so followers see flows while a burst is read.
const BATCH_MAX: usize = 1024;

/// What followers receive: flows, and events the datapath could not write.
#[derive(Clone)]
enum Live {
    Flows(Batch),
    /// Events the datapath dropped since the last report (ring or perf buffer full).
    Lost(u64),
}

struct Shared {
    buffer: Mutex<VecDeque<Stored>>,
    capacity: usize,
    seen: AtomicU64,
    undecodable: AtomicU64,
    started: Instant,
    live: broadcast::Sender<Live>,
    /// The records themselves, for `dpdbg monitor` beside the server.
    /// With the number of the batch's first record: a gap is what a slow monitor missed.
    raw: broadcast::Sender<(u64, Arc<Vec<Bytes>>)>,
    /// False while no datapath is loaded (the reader waits for one).
    loaded: watch::Sender<bool>,
    node: String,
    address: String,
    /// Interface names, looked up once each rather than once per flow.
    ifnames: Mutex<std::collections::HashMap<u32, Arc<str>>>,
    /// Whether each streaming subscriber's queue has room (None once it is gone).
    rooms: Mutex<Vec<Room>>,
}

type Room = Box<dyn Fn() -> Option<usize> + Send>;

impl Shared {
    /// Registers a streaming subscriber's queue, whose items hold `per_item` records.
    fn watch_room<T: Send + 'static>(&self, tx: &mpsc::Sender<T>, per_item: usize) {
        let weak = tx.downgrade();
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(move || weak.upgrade().map(|t| t.capacity() * per_item)));
    }

    /// The most records any streaming subscriber can still take, less
    /// what is on its way to them (pieces of BATCH_MAX records at most, not
    /// yet taken from the channels); None without streaming subscribers.
    fn room(&self) -> Option<usize> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let mut most = 0;
        rooms.retain(|r| r().inspect(|n| most = most.max(*n)).is_some());
        let on_the_way = (self.live.len() + self.raw.len()) * BATCH_MAX;
        (!rooms.is_empty()).then_some(most.saturating_sub(on_the_way))
    }
}

/// How long the reader leaves the ring alone at most while every
/// subscriber's queue is full: the flow buffer (`--last N`) stays this fresh.
const FULL_PAUSE_MAX: Duration = Duration::from_millis(100);

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Reads the ring until told to stop; when the datapath goes away, says so
/// and waits for a new one.
fn read_events(shared: Arc<Shared>, mut reader: EventReader, bpffs: PathBuf, stop: Arc<AtomicBool>) {
    let pins = Pins::new(&bpffs);
    let mut seq = 0u64;
    let mut raw_seq = 0u64;
    let mut last_check = Instant::now();
    let lost_now = |b: &Path| -> Option<u64> {
        let m = dpdbg::maps::Maps::open(b).ok()?.metrics().ok()?;
        Some(
            m.iter()
                .filter(|x| x.reason == dpdbg::abi::Reason::EVENT_LOST.0)
                .fold(0u64, |a, x| a.saturating_add(x.packets)),
        )
    };
    let mut lost_seen = lost_now(&bpffs).unwrap_or(0);
    let pool = ChunkPool::default();
    let mut last_drain = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // Records no subscriber has room for would be read only to be
        // dropped for all of them: they are left in the ring, whose losses
        // the datapath counts and every subscriber is told. Reading them took
        // the CPU the subscribers needed where they share a core: a follower
        // that had room for one batch had a whole ring read for it.
        let limit = match shared.room() {
            Some(0) if last_drain.elapsed() < FULL_PAUSE_MAX => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Some(n) if n > 0 => n,
            // The flow buffer's refresh: what it holds, no more (under a
            // flood the ring never runs dry, and the rest would be dropped).
            Some(_) => shared.capacity,
            // Nobody streams: the flow buffer takes what comes.
            None => dpdbg::events::DRAIN_MAX,
        };
        last_drain = Instant::now();
        if reader.wait(Duration::from_millis(100)).is_err() || last_check.elapsed() > Duration::from_millis(500) {
            last_check = Instant::now();
            // The datapath counts every event it could not write: followers hear of them
            // as Hubble reports a full perf ring.
            if let Some(now) = lost_now(&bpffs)
                && now > lost_seen
            {
                let _ = shared.live.send(Live::Lost(now - lost_seen));
                lost_seen = now;
            }
            if !pins.is_loaded() {
                eprintln!("dpdbg serve: the datapath under {} was unloaded; waiting for a new one", bpffs.display());
                let _ = shared.loaded.send(false);
                drop(reader);
                reader = loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    let transport = match datapath::loaded_settings(&bpffs) {
                        Ok(s) => s.transport,
                        Err(_) => continue,
                    };
                    if let Ok(r) = EventReader::open(&bpffs, transport) {
                        break r;
                    }
                };
                eprintln!("dpdbg serve: a datapath is loaded again; reading its events");
                lost_seen = lost_now(&bpffs).unwrap_or(0);
                let _ = shared.loaded.send(true);
            }
        }
        let offset = dpdbg::sys::wall_offset_ns();
        // One copy of each record, into pooled chunks that the records then
        // share, handed on in pieces of BATCH_MAX. A buffer per drain (up to
        // 20 MB, and its list of records) was given back to the kernel when
        // freed and faulted in again, zeroed, on the next drain: a third of
        // the reader's time.
        let mut cur = pool.get();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut piece: Vec<Bytes> = Vec::with_capacity(BATCH_MAX);
        reader.drain_up_to(limit, |rec| {
            if cur.capacity() - cur.len() < rec.len() && !cur.is_empty() {
                pool.seal(std::mem::replace(&mut cur, pool.get()), &mut spans, &mut piece);
            }
            spans.push((cur.len(), rec.len()));
            cur.extend_from_slice(rec);
            if spans.len() + piece.len() == BATCH_MAX {
                pool.seal(std::mem::replace(&mut cur, pool.get()), &mut spans, &mut piece);
                let full = std::mem::replace(&mut piece, Vec::with_capacity(BATCH_MAX));
                hand_on(&shared, full, offset, &mut seq, &mut raw_seq);
            }
        });
        pool.seal(cur, &mut spans, &mut piece);
        if !piece.is_empty() {
            hand_on(&shared, piece, offset, &mut seq, &mut raw_seq);
        }
    }
}

/// One piece of a drain (BATCH_MAX records at most) to the monitors beside
/// the server, the flow buffer and the followers.
fn hand_on(shared: &Shared, records: Vec<Bytes>, offset: i128, seq: &mut u64, raw_seq: &mut u64) {
    let records = Arc::new(records);
    if shared.raw.receiver_count() > 0 {
        let _ = shared.raw.send((*raw_seq, Arc::clone(&records)));
    }
    *raw_seq += records.len() as u64;
    // The flow buffer holds its flows by value: an allocation per record,
    // freed on another thread, was most of a reader's cost beside a monitor.
    // Followers share one allocation per piece.
    let live = shared.live.receiver_count() > 0;
    let mut batch = Vec::with_capacity(if live { records.len() } else { 0 });
    {
        let mut buf = shared.buffer.lock().unwrap_or_else(|p| p.into_inner());
        for rec in records.iter() {
            if dpdbg::events::header(rec).is_err() {
                shared.undecodable.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            *seq += 1;
            let s = Stored { seq: *seq, rec: rec.clone(), offset, flow: OnceLock::new() };
            if buf.len() == shared.capacity {
                buf.pop_front();
            }
            if live {
                buf.push_back(s.clone());
                batch.push(s);
            } else {
                buf.push_back(s);
            }
        }
    }
    shared.seen.store(*seq, Ordering::Relaxed);
    if !batch.is_empty() {
        // No receiver is fine: the last follower may just have gone.
        let _ = shared.live.send(Live::Flows(Arc::new(batch)));
    }
}

/// A stream of batches handed out one item at a time: tonic encodes the
/// items that are ready into one write.
struct Batched<T> {
    rx: mpsc::Receiver<Result<Vec<T>, Status>>,
    ready: std::collections::VecDeque<T>,
}

impl<T> Batched<T> {
    fn new(rx: mpsc::Receiver<Result<Vec<T>, Status>>) -> Self {
        Batched { rx, ready: Default::default() }
    }
}

impl<T: Unpin> Stream for Batched<T> {
    type Item = Result<T, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<T, Status>>> {
        use std::task::Poll;
        loop {
            if let Some(x) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(x)));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(v))) => self.ready.extend(v),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[derive(Clone)]
struct ObserverService(Arc<Shared>);

fn ts_ns(t: &prost_types::Timestamp) -> i128 {
    t.seconds as i128 * 1_000_000_000 + t.nanos as i128
}

fn lost_response(node: &str, source: flow::LostEventSource, n: u64) -> EncodedResponse {
    EncodedResponse::new(&GetFlowsResponse {
        node_name: node.to_string(),
        time: None,
        response_types: Some(ResponseTypes::LostEvents(flow::LostEvent {
            source: source as i32,
            num_events_lost: n,
            cpu: None,
        })),
    })
}

type FlowStream = Batched<EncodedResponse>;

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = FlowStream;

    async fn get_flows(&self, req: Request<GetFlowsRequest>) -> Result<Response<FlowStream>, Status> {
        let req = req.into_inner();
        if req.first && req.follow {
            return Err(Status::invalid_argument("first and follow cannot be combined"));
        }
        let shared = Arc::clone(&self.0);
        // CLOCK_MONOTONIC is what events carry: the request's wall-clock bounds are moved onto it.
        let offset = dpdbg::sys::wall_offset_ns();
        let mono = |t: &prost_types::Timestamp| (ts_ns(t) - offset).clamp(0, u64::MAX as i128) as u64;
        let filters = Filters {
            since_ns: req.since.as_ref().map(mono),
            until_ns: req.until.as_ref().map(mono),
            ..filter::filters(&req.whitelist, &req.blacklist).map_err(Status::invalid_argument)?
        };
        // On the record itself: the packet is decoded only for a filter that needs it.
        let admits = move |s: &Stored| view(&s.rec).is_ok_and(|e| filters.admits(e, None));
        let response = {
            let shared = Arc::clone(&shared);
            move |s: &Stored| s.flow(&shared).map(|m| m.response.clone())
        };
        // Subscribe before the snapshot so nothing falls between the two.
        let mut live = shared.live.subscribe();
        let mut loaded = shared.loaded.subscribe();
        let snapshot: Vec<Stored> = {
            let buf = shared.buffer.lock().unwrap_or_else(|p| p.into_inner());
            buf.iter().filter(|s| admits(s)).cloned().collect()
        };
        let n = req.number as usize;
        let time_bounded = req.since.is_some() || req.until.is_some();
        let picked: Vec<Stored> = if req.first {
            snapshot.into_iter().take(if n == 0 { usize::MAX } else { n }).collect()
        } else if n > 0 {
            let skip = snapshot.len().saturating_sub(n);
            snapshot.into_iter().skip(skip).collect()
        } else if req.follow && !time_bounded {
            // hubble observe -f: only what comes next.
            vec![]
        } else {
            snapshot
        };
        let mut next_seq = picked.last().map(|s| s.seq).unwrap_or_else(|| shared.seen.load(Ordering::Relaxed)) + 1;
        let (tx, rx) = mpsc::channel(FOLLOW_QUEUE);
        if req.follow {
            shared.watch_room(&tx, BATCH_MAX);
        }
        let node = shared.node.clone();
        let follow = req.follow;
        let until = req.until.as_ref().map(mono);
        tokio::spawn(async move {
            for chunk in picked.chunks(BATCH_MAX) {
                if tx.send(Ok(chunk.iter().filter_map(&response).collect())).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            // Losses not told yet: the ring's (the datapath could not write
            // them) and this client's own (it fell behind). Told with the next
            // batch, or by the tick when none comes.
            let (mut ring_lost, mut lost) = (0u64, 0u64);
            let tell = |ring_lost: &mut u64, lost: &mut u64, out: &mut Vec<EncodedResponse>| {
                use flow::LostEventSource as S;
                for (n, source) in [(ring_lost, S::PerfEventRingBuffer), (lost, S::ObserverEventsQueue)] {
                    if *n > 0 {
                        out.push(lost_response(&node, source, std::mem::take(n)));
                    }
                }
            };
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    // Not guarded on the queue's room: select! checks a guard only
                    // when it starts waiting, and after the traffic nothing else wakes it.
                    _ = tick.tick(), if ring_lost + lost > 0 => {
                        if tx.capacity() == 0 {
                            continue;
                        }
                        let mut out = Vec::new();
                        tell(&mut ring_lost, &mut lost, &mut out);
                        if tx.try_send(Ok(out)).is_err() {
                            return;
                        }
                    }
                    r = live.recv() => match r {
                        Ok(Live::Lost(n)) => ring_lost += n,
                        Ok(Live::Flows(batch)) => {
                            // A gap in the sequence is what this client missed by falling behind:
                            // it loses its own flows, and is told how many.
                            if let Some(first) = batch.first()
                                && first.seq > next_seq
                            {
                                lost += first.seq - next_seq;
                            }
                            let from = next_seq;
                            let fresh = batch.iter().filter(move |s| s.seq >= from);
                            next_seq = batch.last().map_or(next_seq, |s| next_seq.max(s.seq + 1));
                            // Never waits for the client: with its queue full the batch
                            // is dropped, counted, and never decoded. Waiting held the
                            // batches in memory, and decoding ahead of a slow client
                            // spent the CPU it needed.
                            if tx.capacity() == 0 {
                                lost += fresh.count() as u64;
                                continue;
                            }
                            let mut out = Vec::with_capacity(batch.len() + 2);
                            tell(&mut ring_lost, &mut lost, &mut out);
                            // This batch's responses are encoded into one buffer;
                            // another follower reuses them (once per flow).
                            let mut buf = BytesMut::new();
                            let mut ended = false;
                            for s in fresh {
                                if until.is_some_and(|u| s.timestamp_ns() > u) {
                                    ended = true;
                                    break;
                                }
                                if admits(s) {
                                    // 32 KiB at a time: a buffer for the whole batch
                                    // was big enough for the allocator to give back
                                    // to the kernel, and fault in again, every batch.
                                    if buf.capacity() - buf.len() < 1024 {
                                        buf = BytesMut::with_capacity(32 << 10);
                                    }
                                    if let Some(m) = s.materialize(&shared, Some(&mut buf)) {
                                        out.push(m.response.clone());
                                    }
                                }
                            }
                            if !out.is_empty() && tx.try_send(Ok(out)).is_err() {
                                return;
                            }
                            if ended {
                                return;
                            }
                        }
                        // Counted from the sequence gap of the next batch.
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = loaded.changed() => {
                        if !*loaded.borrow() {
                            let _ = tx
                                .send(Err(Status::unavailable(
                                    "the datapath was unloaded: dpdbg serve waits for a new one; ask again once it is loaded",
                                )))
                                .await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Batched::new(rx)))
    }

    async fn get_nodes(&self, _: Request<GetNodesRequest>) -> Result<Response<GetNodesResponse>, Status> {
        let s = &self.0;
        let num = s.buffer.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        Ok(Response::new(GetNodesResponse {
            nodes: vec![Node {
                name: s.node.clone(),
                version: format!("dpdbg {}", env!("CARGO_PKG_VERSION")),
                address: s.address.clone(),
                state: NodeState::NodeConnected as i32,
                tls: None,
                uptime_ns: s.started.elapsed().as_nanos() as u64,
                num_flows: num,
                max_flows: s.capacity as u64,
                seen_flows: s.seen.load(Ordering::Relaxed),
            }],
        }))
    }

    async fn server_status(&self, _: Request<ServerStatusRequest>) -> Result<Response<ServerStatusResponse>, Status> {
        let s = &self.0;
        Ok(Response::new(ServerStatusResponse {
            num_flows: s.buffer.lock().unwrap_or_else(|p| p.into_inner()).len() as u64,
            max_flows: s.capacity as u64,
            seen_flows: s.seen.load(Ordering::Relaxed),
            uptime_ns: s.started.elapsed().as_nanos() as u64,
            num_connected_nodes: Some(1),
            num_unavailable_nodes: Some(0),
            unavailable_nodes: vec![],
            version: format!("dpdbg {}", env!("CARGO_PKG_VERSION")),
        }))
    }
}

#[derive(Clone)]
struct EventsService(Arc<Shared>);

type RecordStream = Pin<Box<dyn Stream<Item = Result<EventBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Events for EventsService {
    type SubscribeStream = RecordStream;

    async fn subscribe(&self, _: Request<SubscribeRequest>) -> Result<Response<RecordStream>, Status> {
        let rx = events_feed(&self.0);
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

/// Every record from now on, for one reader (a gRPC Events stream or a
/// monitor socket connection), in messages of RAW_PIECE records. The queue
/// is bounded and never waited on: a reader that falls behind loses its own
/// records, told with its next message. Ends with an error when the
/// datapath is unloaded, and when the reader goes away.
fn events_feed(shared: &Arc<Shared>) -> mpsc::Receiver<Result<EventBatch, Status>> {
    let mut raw = shared.raw.subscribe();
    let mut loaded = shared.loaded.subscribe();
    let (tx, rx) = mpsc::channel(EVENTS_QUEUE);
    shared.watch_room(&tx, RAW_PIECE);
    tokio::spawn(async move {
        let mut next: Option<u64> = None;
        let mut lost = 0u64;
        // Records dropped while the queue was full are told with the next
        // message, or by this tick when no more come.
        let mut tell = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tell.tick(), if lost > 0 => {
                    if tx.try_send(Ok(EventBatch { records: Vec::new(), lost })).is_ok() {
                        lost = 0;
                    }
                }
                r = raw.recv() => {
                    let (first, records) = match r {
                        Ok(b) => b,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    // A slow monitor loses its own records, and is told how many.
                    lost += next.map_or(0, |n| first.saturating_sub(n));
                    next = Some(first + records.len() as u64);
                    // Never waits for the client: a full queue drops the
                    // message, counted, so a slow monitor holds neither the
                    // reader nor the server's memory (which grew by 100 MB/s
                    // behind one when this waited).
                    for msg in event_batches(&records, 0) {
                        let n = msg.records.len() as u64;
                        let msg = EventBatch { lost: std::mem::take(&mut lost), ..msg };
                        match tx.try_send(Ok(msg)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(Ok(m))) => lost += m.lost + n,
                            Err(_) => return,
                        }
                    }
                }
                _ = loaded.changed() => {
                    if !*loaded.borrow() {
                        let _ = tx.send(Err(Status::unavailable("the datapath was unloaded"))).await;
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Bytes gathered from a reader's queue before they are written: one write
/// per this much under a flood, one per message when records trickle.
const MONITOR_WRITE: usize = 256 << 10;

/// One monitor socket connection: the hello, then the records of
/// `events_feed` as frames, until the reader goes, or the datapath is
/// unloaded or the server stops (either said in an END frame).
async fn serve_monitor(shared: Arc<Shared>, mut s: tokio::net::UnixStream, mut down: watch::Receiver<bool>) {
    use crate::monitor_socket as ms;
    use tokio::io::AsyncWriteExt;
    let mut rx = events_feed(&shared);
    let mut out = Vec::with_capacity(MONITOR_WRITE + (64 << 10));
    out.extend_from_slice(ms::HELLO);
    let push = |out: &mut Vec<u8>, m: Result<EventBatch, Status>| -> bool {
        match m {
            Ok(b) => {
                ms::push_records(out, b.records.iter().map(|r| &r[..]), b.lost);
                true
            }
            Err(status) => {
                ms::push_end(out, status.message());
                false
            }
        }
    };
    loop {
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        let m = tokio::select! {
            m = rx.recv() => m,
            _ = down.changed() => {
                ms::push_end(&mut out, "dpdbg serve stopped");
                let _ = s.write_all(&out).await;
                return;
            }
        };
        let Some(m) = m else { return };
        let mut more = push(&mut out, m);
        while more && out.len() < MONITOR_WRITE {
            match rx.try_recv() {
                Ok(m) => more = push(&mut out, m),
                Err(_) => break,
            }
        }
        if !more {
            let _ = s.write_all(&out).await;
            return;
        }
    }
}

/// Binds the unix socket: the old file goes only when nothing answers on it,
/// then the socket is made group-accessible (0660), never world-accessible.
fn bind_unix(path: &Path, gid: Option<u32>) -> Result<tokio::net::UnixListener, ServeError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: &str, e| ServeError::Io { what: format!("{what} {}", path.display()), source: e };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io("binding", std::io::Error::from(std::io::ErrorKind::AddrInUse)));
        }
        std::fs::remove_file(path).map_err(|e| io("removing the stale socket", e))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    }
    let l = tokio::net::UnixListener::bind(path).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| io("chmod", e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| io("chown", e))?;
    }
    Ok(l)
}

/// Runs the server until `shutdown` resolves; removes its socket on the way out.
pub async fn run(
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ServeSummary, ServeError> {
    let settings = datapath::loaded_settings(&opts.bpffs)?;
    // The reader first: it takes the consumer lock, so a second server stops
    // here (naming the first's pid) before it touches the first's socket.
    let reader = EventReader::open(&opts.bpffs, settings.transport)?;
    let listener = bind_unix(&opts.socket, opts.socket_gid)?;
    let monitor_path = crate::monitor_socket::path_for(&opts.socket);
    let monitor_listener = match bind_unix(&monitor_path, opts.socket_gid) {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&opts.socket);
            return Err(e);
        }
    };
    // In batches of up to BATCH_MAX flows.
    let (live, _) = broadcast::channel(256);
    let (raw, _) = broadcast::channel(1024);
    let (loaded, _) = watch::channel(true);
    let shared = Arc::new(Shared {
        buffer: Mutex::new(VecDeque::with_capacity(opts.buffer)),
        capacity: opts.buffer.max(1),
        seen: AtomicU64::new(0),
        undecodable: AtomicU64::new(0),
        started: Instant::now(),
        live,
        raw,
        loaded,
        node: node_name(),
        address: opts.socket.display().to_string(),
        ifnames: Mutex::new(Default::default()),
        rooms: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let reader_thread = {
        let (s, b, st) = (Arc::clone(&shared), opts.bpffs.clone(), Arc::clone(&stop));
        std::thread::spawn(move || read_events(s, reader, b, st))
    };
    if !opts.ct_gc_interval.is_zero() {
        let (bpffs, every) = (opts.bpffs.clone(), opts.ct_gc_interval);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let b = bpffs.clone();
                match tokio::task::spawn_blocking(move || dpdbg::maps::ct::gc(&b)).await {
                    Ok(Ok(n)) if n > 0 => eprintln!("dpdbg serve: conntrack gc removed {n} expired entries"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => eprintln!("dpdbg serve: conntrack gc: {e}"),
                    Err(e) => eprintln!("dpdbg serve: conntrack gc: {e}"),
                }
            }
        });
    }
    let svc = ObserverService(Arc::clone(&shared));
    let events = EventsService(Arc::clone(&shared));
    // grpc.health.v1 for probes: "" (the process) serves while it runs, for
    // liveness; "observer.Observer" serves only while a datapath is loaded,
    // for readiness.
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    health.set_service_status(READY_SERVICE, tonic_health::ServingStatus::Serving).await;
    {
        let mut loaded = shared.loaded.subscribe();
        let health = health.clone();
        tokio::spawn(async move {
            while loaded.changed().await.is_ok() {
                let status = if *loaded.borrow() {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                health.set_service_status(READY_SERVICE, status).await;
            }
        });
    }
    let (down_tx, down_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = down_tx.send(true);
    });
    let wait_down = |mut rx: watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };
    // The same services on every listener.
    let commands = opts.commands.clone().map(crate::commands::CommandsService::new);
    let routes = |tls: Option<&ServerTls>| -> Result<_, ServeError> {
        let mut b = tonic::transport::Server::builder();
        if let Some(t) = tls {
            let mut cfg = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(&t.cert, &t.key));
            if let Some(ca) = &t.client_ca {
                cfg = cfg.client_ca_root(tonic::transport::Certificate::from_pem(ca));
            }
            b = b.tls_config(cfg).map_err(ServeError::Transport)?;
        }
        Ok(b.add_service(health_svc.clone())
            .add_service(ObserverServer::new(svc.clone()))
            .add_service(EventsServer::new(events.clone()))
            .add_optional_service(commands.clone().map(crate::events::commands_server::CommandsServer::new)))
    };
    let mut servers = Vec::new();
    {
        use tokio_stream::StreamExt;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener).map(|s| {
            if let Ok(s) = &s {
                crate::client::socket_buffers(s);
            }
            s
        });
        let serving = routes(None)?.serve_with_incoming_shutdown(incoming, wait_down(down_rx.clone()));
        servers.push(tokio::spawn(serving));
    }
    {
        let shared = Arc::clone(&shared);
        let mut down = down_rx.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = monitor_listener.accept() => c,
                    _ = down.changed() => return,
                };
                match conn {
                    Ok((s, _)) => {
                        crate::client::socket_buffers(&s);
                        tokio::spawn(serve_monitor(Arc::clone(&shared), s, down.clone()));
                    }
                    // Out of file descriptors, say: the next connection may fare better.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }
    if let Some(addr) = opts.listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Io { what: format!("binding {addr}"), source: e })?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
        let serving = routes(opts.tls.as_ref())?.serve_with_incoming_shutdown(incoming, wait_down(down_rx.clone()));
        servers.push(tokio::spawn(serving));
    }
    eprintln!(
        "dpdbg serve: reading {} ({:?}), serving observer.Observer on {}{}, records for monitors on {}, keeping the last {} flows",
        opts.bpffs.display(),
        settings.transport,
        opts.socket.display(),
        opts.listen
            .map(|a| format!(
                " and {a}{}",
                match &opts.tls {
                    Some(t) if t.client_ca.is_some() => " (mutual TLS)",
                    Some(_) => " (TLS)",
                    None => " (plain)",
                }
            ))
            .unwrap_or_default(),
        monitor_path.display(),
        shared.capacity
    );
    let mut result = Ok(());
    for s in servers {
        match s.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(ServeError::Transport(e)),
            Err(e) => {
                result = Err(ServeError::Io { what: "the gRPC server task".into(), source: std::io::Error::other(e) })
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader_thread.join();
    let _ = std::fs::remove_file(&opts.socket);
    let _ = std::fs::remove_file(&monitor_path);
    result?;
    Ok(ServeSummary {
        seen_flows: shared.seen.load(Ordering::Relaxed),
        undecodable: shared.undecodable.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_drain_goes_in_messages_a_client_accepts() {
        use prost::Message;
        // 70,000 full-size records: one message of them would be 21 MB.
        let rec = Bytes::from(vec![7u8; dpdbg::abi::EVENT_RECORD_SIZE]);
        let records = vec![rec; 70_000];
        let msgs = event_batches(&records, 5);
        assert!(msgs.iter().all(|m| m.encoded_len() < 4 << 20), "every message is under tonic's 4 MiB default");
        assert_eq!(msgs.iter().map(|m| m.records.len()).sum::<usize>(), 70_000);
        assert_eq!(msgs.iter().map(|m| m.lost).collect::<Vec<_>>()[..2], [5, 0], "the loss is told once, first");
    }
}
