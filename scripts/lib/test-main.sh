#!/usr/bin/env bash
set -euo pipefail
. scripts/lib/deps.sh
. scripts/lib/toolchain.sh
install_test_deps
ensure_rust
echo "==> cargo build --release --workspace (the worker and cranlab binaries the integration tests launch)"
cargo build --release --workspace --locked
echo "==> cargo test --release --workspace (one test thread: the root tests create and check host objects)"
cargo test --release --workspace --locked -- --test-threads=1
