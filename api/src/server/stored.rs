//! `dpdbg.v1.Events/Stored`: the records behind the flows the server
//! keeps, chosen as GetFlows chooses flows (the same request, filters and
//! follow), so that a capture can be written after the fact: Hubble's Flow
//! carries no packet bytes, the stored record does.

use std::sync::Arc;

use prost::bytes::BytesMut;
use tonic::Status;

use super::metrics::Kind;
use super::observer::{Batched, select};
use super::store::{Shared, Stored};
use crate::events::StoredRecord;
use crate::observer::GetFlowsRequest;

pub(super) type StoredStream = Batched<StoredRecord>;

/// The stored records `req` picks, each with what the server knows of it
/// that the record does not say: its interface's and endpoint's names.
pub(super) fn stored(shared: &Arc<Shared>, req: GetFlowsRequest) -> Result<StoredStream, Status> {
    let item = {
        let shared = Arc::clone(shared);
        move |s: &Stored, _: Option<&mut BytesMut>| Some(record(&shared, s))
    };
    let lost = |_, n| StoredRecord { lost: n, ..Default::default() };
    select(Arc::clone(shared), req, Kind::Events, item, lost)
}

fn record(shared: &Shared, s: &Stored) -> StoredRecord {
    let hdr = dpdbg::events::header(&s.rec).ok();
    let (ifindex, endpoint) = hdr.map_or((0, 0), |h| (h.ifindex, h.endpoint_id));
    // A kernel drop inside an endpoint's namespace has that namespace's
    // ifindex: no name of this node's is its name.
    let host_if = hdr.is_none_or(|h| dpdbg::kdrop::host_ifindex(&h));
    let interface = if host_if && ifindex != 0 {
        let mut names = shared.ifnames.lock().unwrap_or_else(|p| p.into_inner());
        names.entry(ifindex).or_insert_with(|| dpdbg::sys::ifname(ifindex).unwrap_or_default().into()).to_string()
    } else {
        String::new()
    };
    let endpoint_name = shared.names.current().pods.get(&endpoint).map(|p| p.to_string()).unwrap_or_default();
    StoredRecord {
        record: s.rec.clone(),
        wall_offset_ns: s.offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        interface,
        endpoint_name,
        lost: 0,
    }
}
