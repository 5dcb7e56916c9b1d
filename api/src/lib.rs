//! dpdbg's gRPC API.

pub mod flow {
    tonic::include_proto!("flow");
}

pub mod observer {
    tonic::include_proto!("observer");
}
