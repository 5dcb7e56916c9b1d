#!/usr/bin/env bash
# Installs what dpdbg needs to build and to run its datapath and tests, and
# mounts bpffs. Idempotent: quick when everything is already there. Run as root.
set -euo pipefail

packages=(clang llvm libbpf-dev bpftool iproute2 iputils-ping netcat-openbsd tshark tcpdump python3-venv python3-yaml tmux prometheus)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! mount | grep -q ' /sys/fs/bpf type bpf '; then
    echo "setup: mounting bpffs at /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf
fi

# A gRPC client not written in Rust for the API tests: Python grpcio, with
# stubs generated from our .proto files by grpcio-tools (from PyPI, in a
# venv: Debian's pip refuses system-wide installs). junitparser reads
# `dpdbg verify -o junit` as a CI system's test report reader does.
venv=/opt/dpdbg-venv
if ! "$venv/bin/python" -c 'import grpc, grpc_tools, junitparser' 2>/dev/null; then
    echo "setup: creating $venv with grpcio, grpcio-tools and junitparser"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check grpcio grpcio-tools junitparser
fi
