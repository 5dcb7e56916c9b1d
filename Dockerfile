# dpdbg's image: built in one stage, run from a slim one that holds the
# binary and what it calls at run time (tc from iproute2, for clsact status).
FROM rust:1-bookworm AS build
# clang and llvm compile bpf/datapath.c in build.rs; libbpf-dev has bpf_helpers.h.
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang llvm libbpf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p dpdbg-cli --bin dpdbg

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/dpdbg /usr/local/bin/dpdbg
ENTRYPOINT ["/usr/local/bin/dpdbg"]
CMD ["serve"]
