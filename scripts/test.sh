#!/usr/bin/env bash
# Runs the whole cranlab test suite. As root on Debian/Ubuntu it first installs
# what the tests need (apt-get), saying what it installs.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/lib/test-main.sh "$@"
