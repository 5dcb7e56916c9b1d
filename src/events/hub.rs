//! One consumer, many viewers: the ring buffer (or perf array) has one
//! reader; the hub runs it on a thread and hands every decoded event to each
//! subscriber (the monitor, the TUI, a gRPC stream). A subscriber that falls
//! behind loses events of its own, counted, without slowing the others.
//! When the reader fails, every subscriber learns why and its stream ends;
//! records that do not decode are counted, not dropped unseen.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Event, EventReader, decode};
use crate::Result;

/// Where the hub's records come from: the datapath's reader, or anything
/// else that waits for records and hands them over (tests use their own).
pub trait Source: Send + 'static {
    /// Waits up to `timeout` for records; an error ends the hub.
    fn wait(&mut self, timeout: Duration) -> Result<()>;
    /// Hands every waiting record to `f`.
    fn drain(&mut self, f: &mut dyn FnMut(&[u8]));
}

impl Source for EventReader {
    fn wait(&mut self, timeout: Duration) -> Result<()> {
        EventReader::wait(self, timeout).map(|_| ())
    }

    fn drain(&mut self, f: &mut dyn FnMut(&[u8])) {
        EventReader::drain(self, f);
    }
}

struct Subscriber {
    tx: SyncSender<Arc<Event>>,
    dropped: Arc<AtomicU64>,
}

pub struct Subscription {
    pub events: Receiver<Arc<Event>>,
    /// Events this subscriber missed because its queue was full.
    pub dropped: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
}

/// Why a subscription's stream ended, or nothing yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Event(Arc<Event>),
    /// Nothing within the timeout; the stream goes on.
    Idle,
    /// The hub stopped: the reader failed (why), or it was stopped (None).
    Ended(Option<String>),
}

impl Subscription {
    /// The next event, or why there will be none.
    pub fn next(&self, timeout: Duration) -> Next {
        match self.events.recv_timeout(timeout) {
            Ok(e) => Next::Event(e),
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::Ended(self.failure()),
        }
    }

    /// The reader's error, once it has failed.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub struct Hub<S: Source = EventReader> {
    subs: Arc<Mutex<Vec<Subscriber>>>,
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<String>>>,
    undecodable: Arc<AtomicU64>,
    thread: Option<JoinHandle<S>>,
}

impl<S: Source> Hub<S> {
    pub fn start(mut source: S) -> Hub<S> {
        let subs: Arc<Mutex<Vec<Subscriber>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let undecodable = Arc::new(AtomicU64::new(0));
        let (s, st, fail, bad) = (Arc::clone(&subs), Arc::clone(&stop), Arc::clone(&failure), Arc::clone(&undecodable));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Err(e) = source.wait(Duration::from_millis(50)) {
                    // Say why, then end every stream: a subscriber must not wait forever.
                    *fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    s.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    break;
                }
                let mut batch = Vec::new();
                source.drain(&mut |rec| match decode(rec) {
                    Ok(e) => batch.push(Arc::new(e)),
                    Err(_) => {
                        bad.fetch_add(1, Ordering::Relaxed);
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
            // Stopped: the streams end with the hub.
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
            source
        });
        Hub { subs, stop, failure, undecodable, thread: Some(thread) }
    }

    /// A new viewer with a queue of `capacity` events. After the reader has
    /// failed, the subscription ends at once with the failure.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let failed = self.failure.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if !failed && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            self.subs.lock().unwrap_or_else(|p| p.into_inner()).push(Subscriber { tx, dropped: Arc::clone(&dropped) });
        }
        Subscription { events: rx, dropped, failure: Arc::clone(&self.failure) }
    }

    /// Records the reader gave that did not decode as events.
    pub fn undecodable(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    /// Stops the reader thread and gives the source back.
    pub fn stop(mut self) -> Option<S> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl<S: Source> Drop for Hub<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// Hands out queued records, then fails.
    struct Scripted {
        records: Vec<Vec<u8>>,
        fail_after: usize,
        waits: usize,
    }

    impl Source for Scripted {
        fn wait(&mut self, _: Duration) -> Result<()> {
            self.waits += 1;
            if self.waits > self.fail_after {
                return Err(Error::InvalidInput("the ring went away".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
            Ok(())
        }
        fn drain(&mut self, f: &mut dyn FnMut(&[u8])) {
            for r in self.records.drain(..) {
                f(&r);
            }
        }
    }

    fn good_record() -> Vec<u8> {
        let mut r = vec![0u8; 40];
        r[8] = crate::abi::EVENT_TRACE;
        r
    }

    #[test]
    fn subscribers_learn_that_the_reader_failed() {
        let hub = Hub::start(Scripted { records: vec![], fail_after: 3, waits: 0 });
        let sub = hub.subscribe(8);
        let t = std::time::Instant::now();
        loop {
            match sub.next(Duration::from_secs(2)) {
                Next::Ended(why) => {
                    assert_eq!(why.as_deref(), Some("the ring went away"));
                    break;
                }
                Next::Idle => assert!(t.elapsed() < Duration::from_secs(5), "the stream never ended"),
                Next::Event(e) => panic!("no events were sent: {e:?}"),
            }
        }
        // A late subscriber hears it at once.
        assert_eq!(hub.subscribe(8).next(Duration::from_secs(1)), Next::Ended(Some("the ring went away".into())));
    }

    #[test]
    fn undecodable_records_are_counted() {
        let records = vec![good_record(), vec![1, 2, 3], good_record(), vec![0; 10]];
        let hub = Hub::start(Scripted { records, fail_after: usize::MAX, waits: 0 });
        let sub = hub.subscribe(8);
        let mut got = 0;
        while let Next::Event(_) = sub.next(Duration::from_millis(500)) {
            got += 1;
        }
        assert_eq!(got, 2);
        assert_eq!(hub.undecodable(), 2);
        // Stopping ends the streams without a failure.
        let _ = hub.stop();
        assert_eq!(sub.next(Duration::from_millis(100)), Next::Ended(None));
    }
}
