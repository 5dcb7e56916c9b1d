# syntax=docker/dockerfile:1
# dpdbg's image: built in one stage, run from a slim one that holds the
# binary and what it calls at run time (tc from iproute2, for clsact status).
#
#   docker build -t REGISTRY/dpdbg:0.1.0 .     (the tag: the crate's version)
#
# The cargo registry and target directory are cache mounts: a rebuild after a
# change compiles only what changed. scripts/test-deploy.sh builds this file
# as it is with podman (bases made locally under these names).
FROM rust:1-bookworm AS build
# clang and llvm compile bpf/datapath.c in build.rs; libbpf-dev has bpf_helpers.h.
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang llvm libbpf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=dpdbg-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=dpdbg-target,target=/src/target \
    cargo build --release --locked -p dpdbg-cli --bin dpdbg \
    && install -m 0755 target/release/dpdbg /usr/local/bin/dpdbg

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/dpdbg /usr/local/bin/dpdbg
ENTRYPOINT ["/usr/local/bin/dpdbg"]
CMD ["serve"]
