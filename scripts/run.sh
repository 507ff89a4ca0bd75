#!/usr/bin/env bash
# The main job: installs what a run needs (as root on Debian/Ubuntu), builds
# cranlab and the worker, and runs the default scenario. Extra arguments go to
# `cranlab run` (e.g. --deployments bare,container,kvm --duration 30).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
. scripts/lib/toolchain.sh
install_run_deps
ensure_rust
echo "==> cargo build --release -p bench -p bbu-sim -p rrh-sim -p rt-runtime"
cargo build --release --locked -p bench -p bbu-sim -p rrh-sim -p rt-runtime
out="results/$(date -u +%Y%m%dT%H%M%SZ)-$(hostname -s)"
echo "==> target/release/cranlab run scenarios/default.toml --out $out $*"
exec target/release/cranlab run scenarios/default.toml --out "$out" "$@"
