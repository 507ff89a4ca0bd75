#!/usr/bin/env bash
# The lab run (issue 7): host readiness check, the bare / container / kvm
# comparison and the whitepaper benchmarks, with fixed settings, all stored
# under one results directory named by UTC date and host:
#
#   results/<UTC date>-<hostname>/host-check.txt   cranlab host-check output (+ its exit status)
#   results/<UTC date>-<hostname>/run/             cranlab run (results.json, report.md, report.html, …)
#   results/<UTC date>-<hostname>/whitepaper/      cranlab whitepaper (whitepaper.md, whitepaper.json, …)
#   results/<UTC date>-<hostname>/settings.txt     what was run, exactly
#
# Usage (as root, after `cargo build --release -p bench -p bbu-sim -p rt-runtime`):
#   scripts/lab-run.sh [--quick] [--out DIR] [--cranlab PATH]
#
#   --quick         short version: 6 s comparison in 1 round, whitepaper with 3
#                   instances and short workloads (for checking the set-up)
#   --out DIR       results directory (default results/<UTC date>-<hostname>)
#   --cranlab PATH  the cranlab binary (default target/release/cranlab, or
#                   $CARGO_TARGET_DIR/release/cranlab when that is set)
#
# host-check's warnings and failures do not stop the lab run (its exit status
# is recorded in host-check.txt and printed); an error of the comparison or
# the whitepaper step ends the script with that step's status.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
out=""
cranlab="${CARGO_TARGET_DIR:-target}/release/cranlab"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --out) [ $# -ge 2 ] || { echo "lab-run.sh: --out needs a directory" >&2; exit 2; }; out="$2"; shift ;;
        --cranlab) [ $# -ge 2 ] || { echo "lab-run.sh: --cranlab needs a path" >&2; exit 2; }; cranlab="$2"; shift ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "lab-run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ ! -x "$cranlab" ]; then
    echo "lab-run.sh: $cranlab not found; build it with: cargo build --release -p bench -p bbu-sim -p rt-runtime" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "lab-run.sh: note: not root; cranlab run will skip the container and kvm deployments and use the in-memory path" >&2
fi

# Fixed settings. The lab scenario needs cores 2 and 3 (rrh-sim, worker);
# on a smaller host the comparison runs scenarios/default.toml instead, and
# settings.txt says so.
scenario="scenarios/lab-100mhz-4t4r.toml"
cpus_online=$(getconf _NPROCESSORS_ONLN)
scenario_note=""
if [ "$cpus_online" -lt 4 ]; then
    scenario_note="this host has $cpus_online online cpus; $scenario needs cpus 2 and 3, so scenarios/default.toml runs instead"
    scenario="scenarios/default.toml"
fi
deployments="bare,container,kvm"
run_args=()
wp_args=()
if [ "$quick" -eq 1 ]; then
    run_args=(--duration 6 --rounds 1)
    wp_args=(--count 3 --prime-seconds 1 --mbw-mib 16 --net-seconds 1)
fi
hc_cpus=1

if [ -z "$out" ]; then
    out="results/$(date -u +%Y-%m-%d)-$(hostname -s)"
fi
if [ -e "$out" ]; then
    # One results directory per lab run: never mix two runs' files.
    out="${out}-$(date -u +%H%M%S)"
fi
mkdir -p "$out"
echo "==> results directory: $out"

{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(hostname -f 2>/dev/null || hostname)"
    echo "kernel: $(uname -rv)"
    echo "cranlab: $cranlab"
    echo "git_revision: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "quick: $quick"
    echo "host-check: $cranlab host-check --cpus $hc_cpus"
    echo "run: $cranlab run $scenario --deployments $deployments ${run_args[*]} --no-progress --out $out/run"
    [ -n "$scenario_note" ] && echo "note: $scenario_note"
    echo "whitepaper: $cranlab whitepaper --out $out/whitepaper ${wp_args[*]}"
} > "$out/settings.txt"
[ -n "$scenario_note" ] && echo "==> note: $scenario_note"

# 1. Host readiness: recorded, never fatal.
echo "==> [1/3] $cranlab host-check --cpus $hc_cpus"
set +e
"$cranlab" host-check --cpus "$hc_cpus" > "$out/host-check.txt" 2>&1
hc_status=$?
set -e
cat "$out/host-check.txt"
echo "exit status: $hc_status" >> "$out/host-check.txt"
case "$hc_status" in
    0) echo "==> host-check: pass (exit 0)" ;;
    *) echo "==> host-check: exit $hc_status (warnings or failures above); the lab run goes on, see $out/host-check.txt" ;;
esac

# 2. The comparison.
echo "==> [2/3] $cranlab run $scenario --deployments $deployments ${run_args[*]} --no-progress --out $out/run"
"$cranlab" run "$scenario" --deployments "$deployments" "${run_args[@]}" --no-progress --out "$out/run" || {
    status=$?
    echo "==> cranlab run failed (exit $status); results so far in $out" >&2
    exit "$status"
}

# 3. The whitepaper benchmarks.
echo "==> [3/3] $cranlab whitepaper --out $out/whitepaper ${wp_args[*]}"
"$cranlab" whitepaper --out "$out/whitepaper" "${wp_args[@]}" || {
    status=$?
    echo "==> cranlab whitepaper failed (exit $status); results so far in $out" >&2
    exit "$status"
}

echo "==> done: $out (host-check exit $hc_status; run/report.md, run/report.html, whitepaper/whitepaper.md)"
