#!/usr/bin/env bash
# The main job on the built-in lab: bring it up, watch its traffic with
# `dpdbg monitor`, read the maps, take it down, and show that nothing is
# left. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q
dpdbg=target/release/dpdbg
set -x
$dpdbg lab up --endpoints "${ENDPOINTS:-3}"
$dpdbg monitor --until 6s &
monitor=$!
sleep 1
$dpdbg lab traffic
wait $monitor
$dpdbg datapath status
$dpdbg datapath status -o json > /dev/null
$dpdbg datapath config
$dpdbg bpf endpoint list
$dpdbg bpf ct list --proto tcp
$dpdbg bpf metrics list
$dpdbg prog list
$dpdbg lab down
bpftool prog show | grep -E 'from_endpoint|to_endpoint' || echo "no dpdbg program left"
bpftool net show
