//! Reading the datapath's events from the pinned ring buffer or perf event
//! array. The records and their decoding are `abi::record` (re-exported
//! here): `flow/` decodes them without depending on the readers.

mod ring;

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use aya::maps::perf::{PerfEvent, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, PerfEventArray};

use crate::abi;
pub use crate::abi::record::{DecodeError, Event, EventRef, decode, header, view};
use crate::pins::{Pins, Transport};
use crate::{Error, Result};

/// One consumer per datapath: an exclusive flock on the `maps` pin directory.
fn lock_consumer(pins: &Pins) -> Result<crate::sys::DirLock> {
    let dir = pins.root().join("maps");
    crate::sys::lock_dir(&dir, std::time::Duration::ZERO).map_err(|e| match e {
        crate::sys::LockError::Busy { holder } => Error::EventsBusy { dir: pins.root().to_path_buf(), holder },
        crate::sys::LockError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Error::NotLoaded { dir: pins.root().to_path_buf() }
        }
        crate::sys::LockError::Io(e) => Error::io("flock", &dir, e),
    })
}

/// Records one `drain` call hands over at most (the rest wait for the next).
pub const DRAIN_MAX: usize = 65_536;

/// How long a reader that has just emptied the ring lets records gather
/// before it looks again. The ring's producer wakes its reader whenever it
/// commits a record at the reader's published position, i.e. whenever the
/// reader is caught up: a reader that drains each record as it comes is
/// woken for each one, and in a VM that wake-up (an irq_work, a self-IPI)
/// cost the producing CPU about 0.8 µs per event, slowing a 4.3 M events/s
/// producer to 1 M/s. Pausing after a drain that found records turns that
/// into one wake-up per pause; a quiet ring is unaffected (the first record
/// after a pause is seen at once), and a busy one is seen at most this late.
pub const COALESCE: Duration = Duration::from_millis(1);

enum Inner {
    Ring(ring::Ring),
    Perf(Vec<PerfEventArrayBuffer<MapData>>),
}

/// Reads events from whichever transport the datapath writes to.
pub struct EventReader {
    inner: Inner,
    /// flock held on the pin directory while we consume.
    _lock: crate::sys::DirLock,
    /// Perf samples the kernel reported lost (ring full).
    pub lost: u64,
    /// When the last drain that emptied the ring with records in it ended:
    /// the next wait lets `COALESCE` pass from then.
    coalesce_from: Option<Instant>,
}

impl EventReader {
    pub fn open(bpffs: &Path, transport: Transport) -> Result<EventReader> {
        let pins = Pins::new(bpffs);
        // A partial datapath may have its ring and not the programs that
        // write to it: a reader would wait for events that never come.
        pins.require_loaded()?;
        let lock = lock_consumer(&pins)?;
        let open = |name: &str| -> Result<Map> {
            let p = pins.map(name);
            let data = MapData::from_pin(&p).map_err(|e| Error::bpf(format!("opening {}", p.display()), e))?;
            Map::from_map_data(data).map_err(|e| Error::bpf(format!("opening {}", p.display()), e))
        };
        let inner = match transport {
            Transport::Ringbuf => {
                let p = pins.map("events");
                Inner::Ring(ring::Ring::new(
                    MapData::from_pin(&p).map_err(|e| Error::bpf(format!("opening {}", p.display()), e))?,
                )?)
            }
            Transport::Perf => {
                let mut arr =
                    PerfEventArray::try_from(open("events_perf")?).map_err(|e| Error::bpf("perf event array", e))?;
                let cpus = aya::util::online_cpus().map_err(|(p, e)| Error::io("read", p, e))?;
                let mut bufs = Vec::new();
                for cpu in cpus {
                    bufs.push(arr.open(cpu, Some(64)).map_err(|e| Error::bpf(format!("perf buffer of CPU {cpu}"), e))?);
                }
                Inner::Perf(bufs)
            }
        };
        Ok(EventReader { inner, _lock: lock, lost: 0, coalesce_from: None })
    }

    fn fds(&self) -> Vec<RawFd> {
        match &self.inner {
            Inner::Ring(r) => vec![r.fd().as_raw_fd()],
            Inner::Perf(b) => b.iter().map(|b| b.as_fd().as_raw_fd()).collect(),
        }
    }

    /// Hands every record available now to `f`; returns how many.
    pub fn drain(&mut self, f: impl FnMut(&[u8])) -> usize {
        self.drain_up_to(DRAIN_MAX, f)
    }

    /// As `drain`, at most `max` records from the ring buffer (the perf
    /// buffers are drained whole).
    pub fn drain_up_to(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        let max = max.min(DRAIN_MAX);
        match &mut self.inner {
            // Bounded: under a flood the ring never runs dry, and the
            // caller must get back to its deadline and its signals.
            Inner::Ring(r) => n = r.drain(max, f),
            Inner::Perf(bufs) => {
                let mut scratch = Vec::new();
                for b in bufs.iter_mut() {
                    b.for_each(|ev| match ev {
                        PerfEvent::Sample { head, tail } => {
                            let rec = if tail.is_empty() {
                                head
                            } else {
                                scratch.clear();
                                scratch.extend_from_slice(head);
                                scratch.extend_from_slice(tail);
                                &scratch[..]
                            };
                            f(rec);
                            n += 1;
                        }
                        PerfEvent::Lost { count } => self.lost = self.lost.saturating_add(count),
                    });
                }
            }
        }
        // A drain cut short by `max` left records behind: the next wait
        // must not pause. One that emptied a ring with records in it did:
        // more are likely on their way.
        self.coalesce_from = (n > 0 && n < max).then(Instant::now);
        n
    }

    /// Waits up to `timeout` for events to arrive. After a drain that
    /// emptied a busy ring, it first lets `COALESCE` pass (within `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        if let Some(from) = self.coalesce_from.take() {
            let pause = COALESCE.min(timeout).saturating_sub(from.elapsed());
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        let mut pfds: Vec<libc::pollfd> =
            self.fds().into_iter().map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfds is a valid array of pollfd for the call.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(Error::io("poll", "events", e));
        }
        Ok(r > 0)
    }

    /// Collects decoded events until `quiet` passes with none, or `max` elapses.
    pub fn collect_for(&mut self, quiet: Duration, max: Duration) -> Result<Vec<Event>> {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut last = Instant::now();
        while start.elapsed() < max && last.elapsed() < quiet {
            self.wait(Duration::from_millis(50))?;
            let mut got = 0;
            self.drain(|rec| {
                if let Ok(e) = decode(rec) {
                    out.push(e);
                }
                got += 1;
            });
            if got > 0 {
                last = Instant::now();
            }
        }
        // Perf buffers are per CPU: merge them into time order.
        out.sort_by_key(|e| e.hdr.timestamp_ns);
        Ok(out)
    }
}

/// Size of one ringbuf record at a snap length up to `abi::SNAPLEN_INLINE`,
/// for sizing and benchmarks (above it a record is as long as its capture).
pub const RINGBUF_RECORD_SIZE: usize = abi::EVENT_RECORD_SIZE;
