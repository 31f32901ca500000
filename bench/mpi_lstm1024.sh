#!/bin/bash
# The LSTM(1024) row of docs/DISTRIBUTED.md's cost model, measured on a
# QUIET host: one epoch of 32 sequences of 1000 steps and 12 channels
# (sequence-to-sequence regression, `seqnet new seq2seq-regress --hidden
# 1024`), mini-batch 8 (4 iterations), on 1 rank x 1 thread, 2 ranks x 1
# thread and 1 rank x 2 threads, 3 rounds interleaved. Per-iteration time =
# the training loop's time / 4; c (compute per sequence) = 1x1's / 8, and
# 2x1 against 1x1 gives the communication and batch-independent terms.
# (The template has dropout 0.5: ranks and one process agree in
# distribution, not in value, see docs/DISTRIBUTED.md "Left".)
#
# Usage: bench/mpi_lstm1024.sh [seqnet binary built with --features mpi] [rounds]
set -euo pipefail
B=${1:-$(pwd)/target/release/seqnet}
ROUNDS=${2:-3}
W=${MPI_LSTM_DIR:-/tmp/mpi_lstm1024}
mkdir -p "$W" && cd "$W"
[ -d s1000 ] || "$B" generate-series --out s1000 --count 32 --steps 1001 --channels 12 >/dev/null
[ -f lstm1024.json ] || "$B" new seq2seq-regress --features 12 --hidden 1024 --responses 12 > lstm1024.json
COMMON="train --net lstm1024.json --data s1000 --epochs 1 --mini-batch-size 8 --seed 1 --quiet"
RING="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
for round in $(seq 1 "$ROUNDS"); do
  line="round $round"
  for r in 1x1 2x1 1x2; do
    case $r in
      1x1) cmd="env RAYON_NUM_THREADS=1 $B $COMMON --out a.safetensors --execution-environment cpu" ;;
      2x1) cmd="mpirun --allow-run-as-root -np 2 --bind-to core $RING -x RAYON_NUM_THREADS=1 $B $COMMON --out b.safetensors --execution-environment parallel" ;;
      1x2) cmd="env RAYON_NUM_THREADS=2 $B $COMMON --out c.safetensors --execution-environment cpu" ;;
    esac
    out=$($cmd 2>&1)
    loop=$(echo "$out" | sed -n 's/.*trained 1 epoch.* in \([0-9.]*\) s.*/\1/p' | head -1)
    line="$line  $r loop ${loop}s (per iteration $(echo "scale=3; $loop / 4" | bc)s)"
  done
  echo "$line  load $(cut -d' ' -f1 /proc/loadavg)"
done
