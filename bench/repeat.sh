#!/usr/bin/env bash
# Runs bench/compare.sh N times in a row (seqnet, then its peers, each run)
# and prints, per workload, the spread of the N run medians and of the N
# seqnet/peer ratios (bench/tools/runs_summary.py): issue 16's "median stable
# across 5 full runs". Each run's output is kept in the log folder.
#
#   bench/repeat.sh N [name,name,...] [log folder, default bench-runs/<time>]
#
# Run it on a quiet machine: with other work on the cores only the ratios of
# one run mean anything, and not even those when the load changes mid-run.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:?usage: bench/repeat.sh N [workloads] [log folder]}"
only="${2:-}"
logs="${3:-bench-runs/$(date -u +%Y%m%dT%H%M%S)}"
mkdir -p "$logs"
for i in $(seq 1 "$n"); do
  echo "# run $i of $n ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))" >&2
  bash bench/compare.sh "$only" > "$logs/run$i.txt" 2>&1
done
python3 bench/tools/runs_summary.py "$logs"/run*.txt | tee "$logs/summary.txt"
