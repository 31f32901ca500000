#!/bin/bash
# Where the video epoch's time goes outside the training loop, per process:
# one run each of 1 rank x 1 thread, 2 ranks x 1 thread sharded with Open
# MPI's defaults (`2x1-shard` of bench/mpi_video.sh) and with the fast
# one-machine start (`2x1-fast`), and `mpirun -np 2 /bin/true`, with
# SEQNET_MPI_TIMES set to the launch time: each process prints its phases
# (seconds since the launch; wall and CPU seconds since the previous
# phase), its seconds inside MPI calls, and rank 0 how evenly the shares
# divide the time steps (docs/DISTRIBUTED.md "Where the time outside the
# loop goes").
#
# Usage: bench/mpi_phases.sh [seqnet binary built with --features mpi] [rounds]
set -euo pipefail
B=${1:-$(pwd)/target/release/seqnet}
ROUNDS=${2:-1}
W=${MPI_VIDEO_DIR:-/tmp/mpi_video}
mkdir -p "$W" && cd "$W"
[ -d vids ] || "$B" generate-videos --out vids --count 400 --classes 4 --seed 1 >/dev/null
[ -f video.json ] || "$B" new video --classes 4 > video.json
COMMON="train --net video.json --data vids --epochs 1 --mini-batch-size 16 --learn-rate 0.0002 --gradient-threshold 1 --shuffle every-epoch --seed 3 --quiet"
RING="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
FAST="--mca pml ob1 --mca btl self,vader"
for round in $(seq 1 "$ROUNDS"); do
  for run in 1x1 2x1-shard 2x1-fast true; do
    t=$(date +%s.%N)
    case $run in
      1x1) out=$(SEQNET_MPI_TIMES=$t RAYON_NUM_THREADS=1 "$B" $COMMON --out p11.safetensors --execution-environment cpu 2>&1) ;;
      2x1-shard) out=$(mpirun --allow-run-as-root -np 2 -x RAYON_NUM_THREADS=1 -x SEQNET_MPI_TIMES=$t --bind-to none $RING \
        "$B" $COMMON --out p21s.safetensors --execution-environment parallel --shard-solver 2>&1) ;;
      2x1-fast) out=$(mpirun --allow-run-as-root -np 2 -x RAYON_NUM_THREADS=1 -x SEQNET_MPI_TIMES=$t --bind-to none $RING $FAST \
        "$B" $COMMON --out p21f.safetensors --execution-environment parallel --shard-solver 2>&1) ;;
      true) out=$(mpirun --allow-run-as-root -np 2 /bin/true 2>&1) ;;
    esac
    e=$(date +%s.%N)
    echo "== round $round $run: wall $(echo "$e - $t" | bc) s, load $(cut -d' ' -f1 /proc/loadavg)"
    echo "$out" | grep -E "phases|collectives|time steps|trained" || true
  done
done
