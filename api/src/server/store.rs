//! The server's store: the one reader of the ring, the flow buffer that
//! late joiners ask for the last N of, the pooled chunks records live in,
//! and what every subscriber shares (`Shared`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dpdbg::datapath::{self, Pins};
use dpdbg::events::{EventReader, view};
use dpdbg::flow::Flow as Decoded;
use prost::bytes::{Bytes, BytesMut};
use tokio::sync::{broadcast, mpsc, watch};

use crate::encoded::EncodedResponse;

/// One flow as the server keeps it: what filters look at, and the response
/// every subscriber is sent, encoded once.
#[derive(Clone)]
pub(super) struct Stored {
    pub(super) seq: u64,
    /// The record as the ring held it (a slice of its drain's one buffer).
    pub(super) rec: Bytes,
    /// Wall clock minus CLOCK_MONOTONIC when it was read: the flow's time.
    pub(super) offset: i128,
    /// The event decoded and its Hubble response encoded, made the first
    /// time anyone needs them: a server nobody asks for flows only copies
    /// records (a monitor beside it reads those), and the last N flows a
    /// late joiner may ask for are decoded when it asks.
    pub(super) flow: OnceLock<Option<Materialized>>,
}

#[derive(Clone)]
pub(super) struct Materialized {
    pub(super) response: EncodedResponse,
}

impl Stored {
    pub(super) fn timestamp_ns(&self) -> u64 {
        self.rec.get(..8).map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
    }

    /// The flow, decoded and encoded once (into `out`, one buffer for a
    /// batch, when given); None for a record that does not decode.
    pub(super) fn materialize(&self, shared: &Shared, out: Option<&mut BytesMut>) -> Option<&Materialized> {
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
                let names = shared.names.current();
                // Written as protobuf straight from the event (wire.rs, held
                // byte for byte to convert::to_flow's encoding by its test).
                thread_local! {
                    static SCRATCH: std::cell::RefCell<(Vec<u8>, String)> = const {
                        std::cell::RefCell::new((Vec::new(), String::new()))
                    };
                }
                let response = SCRATCH.with_borrow_mut(|(bytes, line)| {
                    bytes.clear();
                    crate::wire::flow_response(bytes, line, ev, &d, self.offset, &shared.node, &ifname, &names);
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
pub(super) struct ChunkPool(Arc<Mutex<Vec<Vec<u8>>>>);

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
    pub(super) fn get(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_else(|| Vec::with_capacity(RECORD_CHUNK))
    }

    /// The chunk's records (`spans`, taken) as slices of it, onto `records`.
    pub(super) fn seal(&self, buf: Vec<u8>, spans: &mut Vec<(usize, usize)>, records: &mut Vec<Bytes>) {
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
pub(super) type Batch = Arc<Vec<Stored>>;

/// Batches (up to BATCH_MAX flows each) queued for one follower at most.
pub(super) const FOLLOW_QUEUE: usize = 16;

/// EventBatch messages queued for one Events subscriber at most (16 Ki
/// records, about 5 MB); past that its records are dropped and counted.
pub(super) const EVENTS_QUEUE: usize = 128;

/// Records per EventBatch message: at most 128 × (header + 256 snap bytes),
/// about 37 KiB, so each message's encoding stays a "medium" allocation too.
pub(super) const RAW_PIECE: usize = 128;

/// Most flows in one batch, so followers see flows while a burst is read.
pub(super) const BATCH_MAX: usize = 1024;

/// What followers receive: flows, and events the datapath could not write.
#[derive(Clone)]
pub(super) enum Live {
    Flows(Batch),
    /// Events the datapath dropped since the last report (ring or perf buffer full).
    Lost(u64),
}

pub(super) struct Shared {
    pub(super) buffer: Mutex<VecDeque<Stored>>,
    pub(super) capacity: usize,
    pub(super) seen: AtomicU64,
    pub(super) undecodable: AtomicU64,
    pub(super) started: Instant,
    pub(super) live: broadcast::Sender<Live>,
    /// The records themselves, for `dpdbg monitor` beside the server.
    /// With the number of the batch's first record: a gap is what a slow monitor missed.
    pub(super) raw: broadcast::Sender<(u64, Arc<Vec<Bytes>>)>,
    /// False while no datapath is loaded (the reader waits for one).
    pub(super) loaded: watch::Sender<bool>,
    pub(super) node: String,
    pub(super) address: String,
    /// Interface names, looked up once each rather than once per flow.
    pub(super) ifnames: Mutex<std::collections::HashMap<u32, Arc<str>>>,
    /// Whether each streaming subscriber's queue has room (None once it is gone).
    pub(super) rooms: Mutex<Vec<Room>>,
    /// Readers of the records (monitor socket connections and Events
    /// streams) now: each holds a queue and a socket buffer, so they are capped.
    pub(super) record_readers: Arc<std::sync::atomic::AtomicUsize>,
    /// What `--metrics` shows of the server: the flows read, the subscribers.
    pub(super) counters: Arc<super::metrics::Counters>,
    /// Names of endpoints and labels of identities, read once per refresh.
    pub(super) names: NamesTable,
}

/// The names the encoder puts in flows, read from the maps once per
/// refresh (`refresh_names`), never per flow: each encoding thread keeps the
/// table it last took and looks at one counter per flow to see it is current.
#[derive(Default)]
pub(super) struct NamesTable {
    table: std::sync::RwLock<Arc<dpdbg::maps::Names>>,
    generation: AtomicU64,
}

impl NamesTable {
    /// The table now (this thread's copy while no refresh changed it).
    pub(super) fn current(&self) -> Arc<dpdbg::maps::Names> {
        thread_local! {
            static MINE: std::cell::RefCell<(u64, Option<Arc<dpdbg::maps::Names>>)> = const { std::cell::RefCell::new((0, None)) };
        }
        let now = self.generation.load(Ordering::Acquire);
        MINE.with_borrow_mut(|(seen, table)| match table {
            Some(t) if *seen == now => Arc::clone(t),
            _ => {
                let t = Arc::clone(&self.table.read().unwrap_or_else(|p| p.into_inner()));
                *seen = now;
                *table = Some(Arc::clone(&t));
                t
            }
        })
    }

    /// Puts a new table in place when it differs from the one in use.
    pub(super) fn set(&self, names: dpdbg::maps::Names) {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        if **t != names {
            *t = Arc::new(names);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// How often the names of endpoints and identities are read again.
pub(super) const NAMES_EVERY: Duration = Duration::from_secs(1);

/// Reads the names every NAMES_EVERY (empty while no datapath is loaded).
pub(super) async fn refresh_names(shared: Arc<Shared>, bpffs: PathBuf) {
    let mut tick = tokio::time::interval(NAMES_EVERY);
    loop {
        tick.tick().await;
        let b = bpffs.clone();
        let read = tokio::task::spawn_blocking(move || dpdbg::maps::Maps::open(&b).and_then(|m| m.names())).await;
        shared.names.set(read.ok().and_then(|r| r.ok()).unwrap_or_default());
    }
}

type Room = Box<dyn Fn() -> Option<usize> + Send>;

impl Shared {
    /// Registers a streaming subscriber's queue, whose items hold `per_item` records.
    pub(super) fn watch_room<T: Send + 'static>(&self, tx: &mpsc::Sender<T>, per_item: usize) {
        let weak = tx.downgrade();
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(move || weak.upgrade().map(|t| t.capacity() * per_item)));
    }

    /// The most records any streaming subscriber can still take, less
    /// what is on its way to them (pieces of BATCH_MAX records at most, not
    /// yet taken from the channels); None without streaming subscribers.
    pub(super) fn room(&self) -> Option<usize> {
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

/// Reads the ring until told to stop; when the datapath goes away, says so
/// and waits for a new one.
/// The datapath's event reader once one is loaded; None when told to stop
/// first. A reader another consumer holds is said once, then tried again.
fn wait_for_reader(bpffs: &Path, stop: &AtomicBool) -> Option<EventReader> {
    let mut said = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Ok(s) = datapath::loaded_settings(bpffs) {
            match EventReader::open(bpffs, s.transport) {
                Ok(r) => return Some(r),
                Err(e) => {
                    let e = e.to_string();
                    if said.as_ref() != Some(&e) {
                        eprintln!("dpdbg serve: a datapath is loaded, but its events cannot be read yet: {e}");
                        said = Some(e);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub(super) fn read_events(shared: Arc<Shared>, reader: Option<EventReader>, bpffs: PathBuf, stop: Arc<AtomicBool>) {
    let pins = Pins::new(&bpffs);
    let mut reader = match reader {
        Some(r) => r,
        None => {
            let Some(r) = wait_for_reader(&bpffs, &stop) else { return };
            eprintln!("dpdbg serve: a datapath is loaded; reading its events");
            let _ = shared.loaded.send(true);
            r
        }
    };
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
                reader = match wait_for_reader(&bpffs, &stop) {
                    Some(r) => r,
                    None => return,
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
            match dpdbg::events::header(rec) {
                Ok(h) => shared.counters.flow(&h),
                Err(_) => {
                    shared.undecodable.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
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
