//! Hubble's `observer.Observer`: GetFlows (the last N, the first N,
//! follow, time bounds, filters), GetNodes and ServerStatus.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dpdbg::events::view;
use dpdbg::flow::Filters;
use prost::bytes::BytesMut;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::metrics::{Kind, Subscriber};
use super::store::{BATCH_MAX, FOLLOW_QUEUE, Live, Shared, Stored};
use crate::encoded::EncodedResponse;
use crate::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNodesRequest, GetNodesResponse, Node, NodeState, ServerStatusRequest,
    ServerStatusResponse, get_flows_response::ResponseTypes,
};
use crate::observer_encoded::observer_server::Observer;
use crate::{filter, flow};

/// A stream of batches handed out one item at a time: tonic encodes the
/// items that are ready into one write.
pub(super) struct Batched<T> {
    rx: mpsc::Receiver<Result<Vec<T>, Status>>,
    ready: std::collections::VecDeque<T>,
}

impl<T> Batched<T> {
    pub(super) fn new(rx: mpsc::Receiver<Result<Vec<T>, Status>>) -> Self {
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

/// How long past `until` a follow waits for flows still on their way from the ring.
const UNTIL_GRACE: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub(super) struct ObserverService(pub(super) Arc<Shared>);

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

/// What GetFlows answers `req` with, each flow made by `item` (from the
/// stored record; with a buffer to encode into when one is at hand) and each
/// loss told by `lost_item`: Observer's responses, or Events' stored records.
pub(super) fn select<T, F, L>(
    shared: Arc<Shared>,
    req: GetFlowsRequest,
    kind: Kind,
    item: F,
    lost_item: L,
) -> Result<Batched<T>, Status>
where
    T: Send + 'static,
    F: Fn(&Stored, Option<&mut BytesMut>) -> Option<T> + Send + Sync + 'static,
    L: Fn(flow::LostEventSource, u64) -> T + Send + Sync + 'static,
{
    if req.first && req.follow {
        return Err(Status::invalid_argument("first and follow cannot be combined"));
    }
    // CLOCK_MONOTONIC is what events carry: the request's wall-clock bounds are moved onto it.
    let offset = dpdbg::sys::wall_offset_ns();
    let mono = |t: &prost_types::Timestamp| (ts_ns(t) - offset).clamp(0, u64::MAX as i128) as u64;
    let filters = Filters {
        since_ns: req.since.as_ref().map(mono),
        until_ns: req.until.as_ref().map(mono),
        ..filter::filters(&shared.node, &shared.names.current(), &req.whitelist, &req.blacklist)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
    };
    // On the record itself: the packet is decoded only for a filter that needs it.
    let admits = move |s: &Stored| view(&s.rec).is_ok_and(|e| filters.admits(e, None));
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
    let counted = req.follow.then(|| {
        shared.watch_room(&tx, BATCH_MAX);
        Subscriber::new(&shared.counters, kind)
    });
    let until = req.until.as_ref().map(mono);
    // A follow ends at `until` even when no flow comes to show it the
    // time has passed: a quiet node would otherwise hold it open for
    // ever. A flow of just before `until` may still be on its way from
    // the ring (the reader pauses up to 100 ms): it gets that long.
    let deadline = req.until.as_ref().map(|u| {
        let wall_now = dpdbg::sys::wall_offset_ns() + dpdbg::sys::monotonic_ns() as i128;
        let ahead = (ts_ns(u) - wall_now).clamp(0, u64::MAX as i128) as u64;
        tokio::time::Instant::now() + Duration::from_nanos(ahead) + UNTIL_GRACE
    });
    tokio::spawn(async move {
        for chunk in picked.chunks(BATCH_MAX) {
            if tx.send(Ok(chunk.iter().filter_map(|s| item(s, None)).collect())).await.is_err() {
                return;
            }
        }
        // Not a follow: done.
        let Some(counted) = counted else { return };
        // Losses not told yet: the ring's (the datapath could not write
        // them) and this client's own (it fell behind). Told with the next
        // batch, or by the tick when none comes.
        let (mut ring_lost, mut lost) = (0u64, 0u64);
        let tell = |ring_lost: &mut u64, lost: &mut u64, out: &mut Vec<T>| {
            use flow::LostEventSource as S;
            for (n, source) in [(ring_lost, S::PerfEventRingBuffer), (lost, S::ObserverEventsQueue)] {
                if *n > 0 {
                    out.push(lost_item(source, std::mem::take(n)));
                }
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let ends = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(ends);
        loop {
            tokio::select! {
                // The client went away: its place goes now, not at the next flow.
                _ = tx.closed() => return,
                _ = &mut ends => {
                    let mut out = Vec::new();
                    tell(&mut ring_lost, &mut lost, &mut out);
                    if !out.is_empty() {
                        let _ = tx.send(Ok(out)).await;
                    }
                    return;
                }
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
                    Ok(Live::Lost(n)) => ring_lost = ring_lost.saturating_add(n),
                    Ok(Live::Flows(batch)) => {
                        // A gap in the sequence is what this client missed by falling behind:
                        // it loses its own flows, and is told how many.
                        if let Some(first) = batch.first()
                            && first.seq > next_seq
                        {
                            counted.lost(first.seq - next_seq);
                            lost = lost.saturating_add(first.seq - next_seq);
                        }
                        let from = next_seq;
                        let fresh = batch.iter().filter(move |s| s.seq >= from);
                        next_seq = batch.last().map_or(next_seq, |s| next_seq.max(s.seq + 1));
                        // Never waits for the client: with its queue full the batch
                        // is dropped, counted, and never decoded. Waiting held the
                        // batches in memory, and decoding ahead of a slow client
                        // spent the CPU it needed.
                        if tx.capacity() == 0 {
                            let n = fresh.count() as u64;
                            counted.lost(n);
                            lost = lost.saturating_add(n);
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
                                if let Some(m) = item(s, Some(&mut buf)) {
                                    out.push(m);
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
    Ok(Batched::new(rx))
}

pub(super) type FlowStream = Batched<EncodedResponse>;

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = FlowStream;

    async fn get_flows(&self, req: Request<GetFlowsRequest>) -> Result<Response<FlowStream>, Status> {
        let shared = Arc::clone(&self.0);
        let node = shared.node.clone();
        let item = {
            let shared = Arc::clone(&shared);
            move |s: &Stored, buf: Option<&mut BytesMut>| s.materialize(&shared, buf).map(|m| m.response.clone())
        };
        let lost = move |source, n| lost_response(&node, source, n);
        select(Arc::clone(&self.0), req.into_inner(), Kind::Observer, item, lost).map(Response::new)
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

    /// The namespaces of this node's named endpoints (Hubble lists those of
    /// the last hour's flows; every endpoint here may have one any time).
    async fn get_namespaces(
        &self,
        _: Request<crate::observer::GetNamespacesRequest>,
    ) -> Result<Response<crate::observer::GetNamespacesResponse>, Status> {
        // The namespaces of this node's named endpoints, sorted as Hubble sorts them.
        let names = self.0.names.current();
        let set: std::collections::BTreeSet<&str> = names.pods.values().map(|p| p.namespace.as_str()).collect();
        let namespaces = set
            .into_iter()
            .map(|n| crate::observer::Namespace { cluster: "default".into(), namespace: n.to_string() })
            .collect();
        Ok(Response::new(crate::observer::GetNamespacesResponse { namespaces }))
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
