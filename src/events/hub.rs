//! One consumer, many viewers: the ring buffer (or perf array) has one
//! reader; the hub runs it on a thread and hands every decoded event to each
//! subscriber (the monitor, the TUI, a gRPC stream). A subscriber that falls
//! behind loses events of its own, counted, without slowing the others.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Event, EventReader, decode};

struct Subscriber {
    tx: SyncSender<Arc<Event>>,
    dropped: Arc<AtomicU64>,
}

pub struct Subscription {
    pub events: Receiver<Arc<Event>>,
    /// Events this subscriber missed because its queue was full.
    pub dropped: Arc<AtomicU64>,
}

pub struct Hub {
    subs: Arc<Mutex<Vec<Subscriber>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<EventReader>>,
}

impl Hub {
    pub fn start(mut reader: EventReader) -> Hub {
        let subs: Arc<Mutex<Vec<Subscriber>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&subs), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if reader.wait(Duration::from_millis(50)).is_err() {
                    break;
                }
                let mut batch = Vec::new();
                reader.drain(|rec| {
                    if let Ok(e) = decode(rec) {
                        batch.push(Arc::new(e));
                    }
                });
                if batch.is_empty() {
                    continue;
                }
                let mut subs = s.lock().unwrap_or_else(|p| p.into_inner());
                subs.retain(|sub| {
                    for e in &batch {
                        match sub.tx.try_send(Arc::clone(e)) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => {
                                sub.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(TrySendError::Disconnected(_)) => return false,
                        }
                    }
                    true
                });
            }
            reader
        });
        Hub { subs, stop, thread: Some(thread) }
    }

    /// A new viewer with a queue of `capacity` events.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).push(Subscriber { tx, dropped: Arc::clone(&dropped) });
        Subscription { events: rx, dropped }
    }

    /// Stops the reader thread and gives the reader back.
    pub fn stop(mut self) -> Option<EventReader> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
