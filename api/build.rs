//! Generates the gRPC code from the .proto files in proto/ with protox (a
//! protobuf compiler in Rust): a fresh machine builds without protoc.

fn main() {
    let files = [
        "proto/observer/observer.proto",
        "proto/flow/flow.proto",
        "proto/dpdbg/v1/events.proto",
        "proto/dpdbg/v1/commands.proto",
        "proto/dpdbg/v1/snapshot.proto",
        "proto/peer/peer.proto",
        "proto/relay/relay.proto",
    ];
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
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".dpdbg.v1.EventBatch.records")
        .bytes(".dpdbg.v1.StoredRecord.record")
        .bytes(".dpdbg.v1.RunOutput")
        .bytes(".dpdbg.v1.SnapshotChunk.json")
        .compile_fds(fds.clone())
    {
        println!("cargo::error=generating the gRPC code: {e}");
        std::process::exit(1);
    }
    // The Observer server a second time, over responses the server encodes
    // once per flow and writes as they are to every subscriber: every other
    // type is the one generated above.
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("encoded");
    let made = std::fs::create_dir_all(&out).and_then(|()| {
        tonic_prost_build::configure()
            .build_client(false)
            .build_server(true)
            .out_dir(&out)
            .extern_path(".flow", "crate::flow")
            .extern_path(".observer", "crate::observer")
            .extern_path(".observer.GetFlowsResponse", "crate::encoded::EncodedResponse")
            .extern_path(".dpdbg.v1", "crate::events")
            .extern_path(".peer", "crate::peer")
            .extern_path(".relay", "crate::relay")
            .compile_fds(fds)
    });
    if let Err(e) = made {
        println!("cargo::error=generating the encoded Observer server: {e}");
        std::process::exit(1);
    }
}
