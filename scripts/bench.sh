#!/usr/bin/env bash
# The benchmarks: each prints its figures and the ratio against the tool an
# operator would use instead, measured in the same run. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo bench -p dpdbg --bench datapath
cargo bench -p dpdbg --bench monitor
cargo bench -p dpdbg --bench kdrop
cargo bench -p dpdbg-cli --bench maps
cargo bench -p dpdbg-cli --bench serve
cargo bench -p dpdbg-cli --bench tui
cargo bench -p dpdbg-cli --bench remote
