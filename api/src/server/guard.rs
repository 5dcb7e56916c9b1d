//! What a TCP listener without client certificates serves: what Hubble
//! serves to any reader (observer.Observer, peer.Peer, grpc.health.v1), no
//! more.
//! dpdbg.v1.Commands runs commands as root on the node, dpdbg.v1.Events
//! streams packet bytes and dpdbg.v1.Snapshot reads every map (addresses,
//! policy, connections); over TCP they need a client certificate (mutual
//! TLS), otherwise any local user could reach them through a loopback port
//! that the unix socket's mode would have kept them from. They are answered
//! here with UNAUTHENTICATED and the way in, rather than left unregistered,
//! so a client hears why instead of "unimplemented".

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::events::commands_server::Commands;
use crate::events::events_server::Events;
use crate::events::snapshot_server::Snapshot;
use crate::events::{EventBatch, ReadRequest, RunOutput, RunRequest, SnapshotChunk, SubscribeRequest};

/// The services every listener serves to anyone who can connect.
pub const OPEN_SERVICES: &str = "observer.Observer, peer.Peer, grpc.health.v1";

/// The services that need the unix socket or a client certificate on TCP.
pub const GUARDED_SERVICES: &str = "dpdbg.v1.Commands, dpdbg.v1.Events, dpdbg.v1.Snapshot";

fn refusal(service: &str) -> Status {
    Status::unauthenticated(format!(
        "{service} is served on TCP only to clients that present a client certificate (mutual TLS: start `dpdbg serve --listen … --tls-cert … --tls-key … --tls-client-ca CA` and give --tls-ca, --tls-cert and --tls-key), or on the node's unix socket; this listener serves {OPEN_SERVICES} to any client"
    ))
}

/// dpdbg.v1.Commands, Events and Snapshot on a listener without client certificates.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Unauthenticated;

type Never<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Commands for Unauthenticated {
    type RunStream = Never<RunOutput>;

    async fn run(&self, _: Request<RunRequest>) -> Result<Response<Self::RunStream>, Status> {
        Err(refusal("dpdbg.v1.Commands"))
    }
}

#[tonic::async_trait]
impl Events for Unauthenticated {
    type SubscribeStream = Never<EventBatch>;

    async fn subscribe(&self, _: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(refusal("dpdbg.v1.Events"))
    }

    type StoredStream = Never<crate::events::StoredRecord>;

    async fn stored(
        &self,
        _: Request<crate::observer::GetFlowsRequest>,
    ) -> Result<Response<Self::StoredStream>, Status> {
        Err(refusal("dpdbg.v1.Events"))
    }
}

#[tonic::async_trait]
impl Snapshot for Unauthenticated {
    type ReadStream = Never<SnapshotChunk>;

    async fn read(&self, _: Request<ReadRequest>) -> Result<Response<Self::ReadStream>, Status> {
        Err(refusal("dpdbg.v1.Snapshot"))
    }
}
