#!/usr/bin/env bash
# The main job on the built-in lab: bring it up, send traffic, show the
# datapath, take it down, and show that nothing is left. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q
dpdbg=target/release/dpdbg
set -x
$dpdbg lab up --endpoints "${ENDPOINTS:-3}"
$dpdbg lab traffic
$dpdbg datapath status
$dpdbg datapath status -o json > /dev/null
$dpdbg lab down
bpftool prog show | grep -E 'from_endpoint|to_endpoint' || echo "no dpdbg program left"
bpftool net show
