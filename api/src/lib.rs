//! dpdbg's gRPC API: Hubble's Observer service (GetFlows, GetNodes,
//! ServerStatus) over dpdbg's datapath events, served by `dpdbg serve`.
//! The async runtime lives here, not in the core: the server reads the
//! core's event reader on a thread of its own.

/// Generated from proto/flow/flow.proto.
pub mod flow {
    tonic::include_proto!("flow");
}

/// Generated from proto/observer/observer.proto.
pub mod observer {
    // Generated: a response's oneof holds a whole flow beside a small lost-events record.
    #![allow(clippy::large_enum_variant)]
    tonic::include_proto!("observer");
}

/// Generated from proto/dpdbg/v1/*.proto. Two levels deep, as the package
/// is: the generated code reaches Hubble's types (observer.GetFlowsRequest)
/// through `super::super`.
pub mod dpdbg_v1 {
    pub mod v1 {
        tonic::include_proto!("dpdbg.v1");
    }
}
pub use dpdbg_v1::v1 as events;

/// Generated from proto/peer/peer.proto: Hubble's peer service.
pub mod peer {
    tonic::include_proto!("peer");
}

/// Generated from proto/relay/relay.proto: Hubble Relay's node status
/// events, which `dpdbg observe` reads from a relay.
pub mod relay {
    tonic::include_proto!("relay");
}

/// The Observer server over [`encoded::EncodedResponse`] (see build.rs).
pub mod observer_encoded {
    include!(concat!(env!("OUT_DIR"), "/encoded/observer.rs"));
}

/// The gRPC crate, for callers that handle its statuses.
pub use tonic;
/// The gRPC health service the server runs, for clients that probe it.
pub use tonic_health;

pub mod client;
pub mod convert;
pub mod encoded;
pub mod filter;
pub mod json;
pub mod monitor_socket;
pub mod remote;
pub mod run_socket;
pub mod server;
pub mod wire;
