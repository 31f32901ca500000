#!/bin/bash
# Issue 14's speed target, side by side on a QUIET host: one epoch of the
# seed's video network (400 videos, mini-batch 16) on 1 rank x 1 thread,
# 2 ranks x 1 thread (MPI; default Open MPI settings, then the ring
# allreduce bound to cores and unbound, then the sharded solver
# `--shard-solver` unbound and bound, then sharded with Open MPI's fast
# start on one machine `2x1-fast`: `--mca pml ob1 --mca btl self,vader`)
# and 1 rank x 2 threads, 5 rounds interleaved (MPI_VIDEO_RUNS="1x1
# 2x1-shard" picks some). Prints, per run, the wall time of the whole command and the
# training loop's own time ("trained 1 epoch ... in X s"), then medians.
# The 2-rank weights must equal each other to the bit and one process's
# within rounding (see docs/DISTRIBUTED.md "Equality with one process").
#
# Usage: bench/mpi_video.sh [seqnet binary built with --features mpi] [rounds]
set -euo pipefail
B=${1:-$(pwd)/target/release/seqnet}
ROUNDS=${2:-5}
W=${MPI_VIDEO_DIR:-/tmp/mpi_video}
mkdir -p "$W" && cd "$W"
[ -d vids ] || "$B" generate-videos --out vids --count 400 --classes 4 --seed 1 >/dev/null
[ -f video.json ] || "$B" new video --classes 4 > video.json
COMMON="train --net video.json --data vids --epochs 1 --mini-batch-size 16 --learn-rate 0.0002 --gradient-threshold 1 --shuffle every-epoch --seed 3 --quiet"
MPI="mpirun --allow-run-as-root -np 2 -x RAYON_NUM_THREADS=1"
RING="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
# One machine: no probing for InfiniBand/OFI transports in MPI_Init
# (docs/DISTRIBUTED.md "Open MPI settings").
FAST="--mca pml ob1 --mca btl self,vader"
declare -A RUNS=(
  [1x1]="env RAYON_NUM_THREADS=1 $B $COMMON --out m11.safetensors --execution-environment cpu"
  [2x1]="$MPI --bind-to none $B $COMMON --out m21.safetensors --execution-environment parallel"
  [2x1-ring-core]="$MPI --bind-to core $RING $B $COMMON --out m21rc.safetensors --execution-environment parallel"
  [2x1-ring-none]="$MPI --bind-to none $RING $B $COMMON --out m21rn.safetensors --execution-environment parallel"
  [2x1-shard]="$MPI --bind-to none $RING $B $COMMON --out m21s.safetensors --execution-environment parallel --shard-solver"
  [2x1-shard-core]="$MPI --bind-to core $RING $B $COMMON --out m21sc.safetensors --execution-environment parallel --shard-solver"
  [2x1-fast]="$MPI --bind-to none $RING $FAST $B $COMMON --out m21f.safetensors --execution-environment parallel --shard-solver"
  [1x2]="env RAYON_NUM_THREADS=2 $B $COMMON --out m12.safetensors --execution-environment cpu"
)
ORDER="${MPI_VIDEO_RUNS:-1x1 2x1 2x1-ring-core 2x1-ring-none 2x1-shard 2x1-shard-core 2x1-fast 1x2}"
: > times.txt
rm -f m21.safetensors m21rc.safetensors m21s.safetensors m21f.safetensors
for round in $(seq 1 "$ROUNDS"); do
  line="round $round"
  for r in $ORDER; do
    s=$(date +%s.%N)
    out=$(${RUNS[$r]} 2>&1)
    e=$(date +%s.%N)
    wall=$(echo "$e - $s" | bc)
    loop=$(echo "$out" | sed -n 's/.*trained 1 epoch.* in \([0-9.]*\) s.*/\1/p' | head -1)
    echo "$r $wall $loop" >> times.txt
    line="$line  $r ${wall:0:5}s (loop ${loop}s)"
  done
  echo "$line  load $(cut -d' ' -f1 /proc/loadavg)"
done
echo "medians (wall, loop) and ratio to 1x1:"
python3 - <<'PY'
import statistics as st
rows = [l.split() for l in open("times.txt")]
runs = {}
for r, wall, loop in (x + [""] * (3 - len(x)) for x in rows):
    runs.setdefault(r, ([], []))
    runs[r][0].append(float(wall))
    if loop:
        runs[r][1].append(float(loop))
base = st.median(runs["1x1"][0]), st.median(runs["1x1"][1])
for r, (w, l) in runs.items():
    mw, ml = st.median(w), st.median(l)
    print(f"{r:15s} wall {mw:6.2f} s ({base[0] / mw:4.2f}x)   loop {ml:6.2f} s ({base[1] / ml:4.2f}x)")
print("target: 2 ranks x 1 thread at least 1.60x")
PY
python3 - <<'PY'
import json, struct, array
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: array.array("f", d[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in h.items() if k != "__metadata__" and not k.startswith("training.")}
import os
c = load("m11.safetensors")
if os.path.exists("m21.safetensors") and os.path.exists("m21rc.safetensors"):
    a, b = load("m21.safetensors"), load("m21rc.safetensors")
    print("2x1 default vs ring: bit-identical" if a == b else "2x1 default vs ring: DIFFER")
for f in ("m21.safetensors", "m21s.safetensors", "m21f.safetensors"):
    if not os.path.exists(f):
        continue
    a = load(f)
    worst = max(max(abs(x - y) for x, y in zip(a[k], c[k])) / max(max(map(abs, c[k])), 1e-6)
                for k in c if k not in ("conv.Bias", "bn.TrainedMean"))
    print(f"{f} vs 1x1, largest relative difference (conv.Bias, bn.TrainedMean aside): {worst:.2e}")
PY
