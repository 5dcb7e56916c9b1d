//! `dpdbg.v1.Snapshot`: what one dashboard refresh reads from the node,
//! typed. The core reads the maps once (`dpdbg::snapshot::read`: conntrack
//! in batches) on a blocking thread, with the status and programs when
//! asked; the reply is the core's `NodeSnapshot` as JSON, in chunks, which
//! `dpdbg tui --server` reads back into the very types the dashboard's local
//! source gets from the core. No child process, no command line, no text
//! parsed back.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::events::snapshot_server::Snapshot;
use crate::events::{ReadRequest, SnapshotChunk};

/// Reads running at once; more wait their turn (each holds the whole
/// conntrack table in memory while it is sent).
const MAX_READING: usize = 2;
/// Bytes of the document per message, at most: under every client's
/// default limit on a message (4 MiB).
const CHUNK: usize = 1 << 20;

#[derive(Clone)]
pub(super) struct SnapshotService {
    bpffs: PathBuf,
    reading: Arc<Semaphore>,
}

impl SnapshotService {
    pub(super) fn new(bpffs: PathBuf) -> Self {
        SnapshotService { bpffs, reading: Arc::new(Semaphore::new(MAX_READING)) }
    }
}

/// A failed read, with the gRPC code that says whose the problem is.
fn status_of(e: &dpdbg::Error) -> Status {
    match e {
        dpdbg::Error::NotPrivileged { .. } => Status::permission_denied(e.to_string()),
        dpdbg::Error::BpffsNotMounted { .. } => Status::failed_precondition(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl Snapshot for SnapshotService {
    type ReadStream = Pin<Box<dyn Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

    async fn read(&self, req: Request<ReadRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let r = req.into_inner();
        let want = dpdbg::snapshot::Want { status: r.status, programs: r.programs };
        let _permit = Arc::clone(&self.reading)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("dpdbg serve is stopping"))?;
        let bpffs = self.bpffs.clone();
        let json = tokio::task::spawn_blocking(move || {
            let s = dpdbg::snapshot::read(&bpffs, want).map_err(|e| status_of(&e))?;
            serde_json::to_vec(&s).map_err(|e| Status::internal(format!("encoding the snapshot: {e}")))
        })
        .await
        .map_err(|e| Status::internal(format!("reading the snapshot: {e}")))??;
        let json = prost::bytes::Bytes::from(json);
        let chunks: Vec<Result<SnapshotChunk, Status>> = (0..json.len().div_ceil(CHUNK).max(1))
            .map(|i| Ok(SnapshotChunk { json: json.slice(i * CHUNK..((i + 1) * CHUNK).min(json.len())) }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}
