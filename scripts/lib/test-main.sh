#!/usr/bin/env bash
set -euo pipefail
. scripts/lib/deps.sh
install_test_deps
echo "==> cargo test --workspace (release profile for real-time paths)"
cargo test --workspace --release --locked -- --test-threads=1
