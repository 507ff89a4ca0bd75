#!/usr/bin/env bash
# Builds the minimal OCI bundle for the BBU worker from this workspace:
# a statically linked bbu-sim in a read-only rootfs, and a config.json with
# SCHED_FIFO, the cpuset, RTPRIO/MEMLOCK rlimits, CAP_NET_RAW + CAP_IPC_LOCK
# only, noNewPrivileges and a seccomp deny-list. The same bundle runs under
# `rt-runtime run -b OUT ID`, `runc run -b OUT ID` and `crun run -b OUT ID`.
#
# usage: scripts/build-bundle.sh OUT_DIR [--cpus 1] [--fifo 80] [--memory-mib 256]
#                                [--rt-runtime-us N] [-- bbu-sim arguments]
# Extra options go to `rt-runtime bundle` (see `rt-runtime bundle --help`).
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit $(( $# < 1 ? 2 : 0 ))
fi
out=$1
shift

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
triple=x86_64-unknown-linux-gnu

cd "$root"
echo "build-bundle: building static bbu-sim ($triple, +crt-static)" >&2
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release -p bbu-sim --target "$triple"
echo "build-bundle: building rt-runtime" >&2
cargo build --quiet --release -p rt-runtime --bin rt-runtime

worker=$target/$triple/release/bbu-sim
if file "$worker" 2>/dev/null | grep -q "dynamically linked"; then
    echo "build-bundle: $worker is not statically linked" >&2
    exit 1
fi
"$target/release/rt-runtime" bundle "$out" --program "$worker" "$@"
echo "build-bundle: bundle in $out (check it with: $target/release/rt-runtime check -b $out)" >&2
