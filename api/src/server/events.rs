//! `dpdbg.v1.Events`: the ring's records themselves, for readers that
//! decode them (monitor, the dashboard) on other machines; the monitor
//! socket beside the server feeds from the same `events_feed`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::metrics::{Kind, Subscriber};
use super::store::{EVENTS_QUEUE, RAW_PIECE, Shared};
use crate::events::events_server::Events;
use crate::events::{EventBatch, SubscribeRequest};

/// One drain's records as Events messages. A drain can hold tens of
/// thousands of records: they go in pieces, well under gRPC's 4 MiB message
/// limit; the loss is told once, before them.
pub(super) fn event_batches(records: &[Bytes], mut lost: u64) -> Vec<EventBatch> {
    records
        .chunks(RAW_PIECE)
        .map(|piece| EventBatch { records: piece.to_vec(), lost: std::mem::take(&mut lost) })
        .collect()
}

#[derive(Clone)]
pub(super) struct EventsService(pub(super) Arc<Shared>);

type RecordStream = Pin<Box<dyn Stream<Item = Result<EventBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Events for EventsService {
    type SubscribeStream = RecordStream;

    async fn subscribe(&self, _: Request<SubscribeRequest>) -> Result<Response<RecordStream>, Status> {
        let rx = events_feed(&self.0, Kind::Events)?;
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    type StoredStream = super::stored::StoredStream;

    async fn stored(
        &self,
        req: Request<crate::observer::GetFlowsRequest>,
    ) -> Result<Response<Self::StoredStream>, Status> {
        super::stored::stored(&self.0, req.into_inner()).map(Response::new)
    }
}

/// Readers of the records at once, at most: monitor socket connections and
/// Events streams together. Each holds a queue of up to EVENTS_QUEUE
/// messages (about 5 MB) and a socket buffer; 200 readers that never read
/// held 1.6 GB of kernel memory before there was a cap.
pub(super) const MAX_RECORD_READERS: usize = 32;

/// One reader's place among MAX_RECORD_READERS, given back when it goes.
struct ReaderSlot(Arc<AtomicUsize>);

impl ReaderSlot {
    fn take(count: &Arc<AtomicUsize>) -> Result<ReaderSlot, Status> {
        let taken =
            count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_RECORD_READERS).then_some(n + 1));
        match taken {
            Ok(_) => Ok(ReaderSlot(Arc::clone(count))),
            Err(_) => Err(Status::resource_exhausted(format!(
                "too many record readers: {MAX_RECORD_READERS} monitors and Events subscribers already read this server's records; stop one (a monitor that never reads holds its place), or use `dpdbg observe` (Hubble's Observer), which has no such cap"
            ))),
        }
    }
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every record from now on, for one reader (a gRPC Events stream or a
/// monitor socket connection), in messages of RAW_PIECE records. The queue
/// is bounded and never waited on: a reader that falls behind loses its own
/// records, told with its next message. Ends with an error when the
/// datapath is unloaded, and when the reader goes away.
pub(super) fn events_feed(
    shared: &Arc<Shared>,
    kind: Kind,
) -> Result<mpsc::Receiver<Result<EventBatch, Status>>, Status> {
    let reader = ReaderSlot::take(&shared.record_readers)?;
    let counted = Subscriber::new(&shared.counters, kind);
    let mut raw = shared.raw.subscribe();
    let mut loaded = shared.loaded.subscribe();
    let (tx, rx) = mpsc::channel(EVENTS_QUEUE);
    shared.watch_room(&tx, RAW_PIECE);
    tokio::spawn(async move {
        let _reader = reader;
        let counted = counted;
        let mut next: Option<u64> = None;
        let mut lost = 0u64;
        // Records dropped while the queue was full are told with the next
        // message, or by this tick when no more come.
        let mut tell = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                // The reader went away: its place goes now, not at the next record.
                _ = tx.closed() => return,
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
                    let missed = next.map_or(0, |n| first.saturating_sub(n));
                    counted.lost(missed);
                    lost = lost.saturating_add(missed);
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
                            Err(mpsc::error::TrySendError::Full(Ok(m))) => {
                                counted.lost(n);
                                lost = lost.saturating_add(m.lost).saturating_add(n)
                            }
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
    Ok(rx)
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
