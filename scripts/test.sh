#!/usr/bin/env bash
# Runs every test against the real kernel: needs root (BPF, netns, veth).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace
