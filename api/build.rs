//! Generates the gRPC code from the .proto files in proto/ with protox (a
//! protobuf compiler in Rust): a fresh machine builds without protoc.

fn main() {
    let files = ["proto/observer/observer.proto", "proto/flow/flow.proto", "proto/dpdbg/v1/events.proto"];
    for f in files {
        println!("cargo::rerun-if-changed={f}");
    }
    let fds = match protox::compile(files, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => {
            println!("cargo::error=compiling the .proto files: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds) {
        println!("cargo::error=generating the gRPC code: {e}");
        std::process::exit(1);
    }
}
