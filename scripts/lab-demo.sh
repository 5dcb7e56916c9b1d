#!/usr/bin/env bash
# The main job on the built-in lab: bring it up, watch its traffic with
# `dpdbg monitor`, then again beside `dpdbg serve` (two monitors and a
# Hubble-style `observe -f` at once, then `observe --last 20` after the
# traffic), read the maps, take it down, and show that nothing is left.
# Run as root.
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

# The server holds the ring; any number of readers share it.
sock=$(mktemp -d)/dpdbg.sock
$dpdbg serve --socket "$sock" &
serve=$!
while [ ! -S "$sock" ]; do sleep 0.1; done
DPDBG_EVENTS_SOCKET=$sock $dpdbg monitor --until 6s > "$sock.monitor1" &
m1=$!
DPDBG_EVENTS_SOCKET=$sock $dpdbg monitor --until 6s -o jsonl > "$sock.monitor2" &
m2=$!
timeout -s INT 7 $dpdbg observe -f --server "$sock" > "$sock.observe" || true &
observe=$!
sleep 1
$dpdbg lab traffic
wait $m1 $m2 $observe
wc -l "$sock.monitor1" "$sock.monitor2" "$sock.observe"
$dpdbg observe --last 20 --server "$sock"
kill -TERM $serve
wait $serve
rm -rf "$(dirname "$sock")"
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
