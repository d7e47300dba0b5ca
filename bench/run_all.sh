#!/usr/bin/env bash
# Every benchmark, one after another (never side by side: the machine has 2 cores).
# Each prints ratios measured side by side within its own run.
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in bench/bench_*.py; do
  echo "=== $bench"
  python "$bench"
done
