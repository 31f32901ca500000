#!/usr/bin/env bash
# Runs seqnet's benchmark workloads (bench/WORKLOADS.md), then the same
# workloads in PyTorch (and ONNX Runtime where installed) on 2 threads right
# after, and prints the ratio per workload against the issue's targets.
#
#   bench/compare.sh [name,name,...]
#
# Needs: cargo; python3 with torch for the comparison (pip install torch;
# optionally onnxruntime onnx), or the python in $PYTHON (e.g. a venv's). Without PyTorch it prints seqnet's lines only.
# The host is noisy: quote ratios from one run of this script only.
set -euo pipefail
cd "$(dirname "$0")/.."
only="${1:-}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cargo build --release -q -p seqnet-cli --example bench
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
echo "# seqnet ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), RAYON_NUM_THREADS=$RAYON_NUM_THREADS)"
if [ -n "$only" ]; then
  ./target/release/examples/bench "$only" | tee "$out"
else
  ./target/release/examples/bench | tee "$out"
fi
py="${PYTHON:-python3}"
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "# PyTorch is not installed (pip install torch): no comparison" >&2
  exit 0
fi
echo "# peers"
# Passive OpenMP waiting: with the default spin-waiting, PyTorch's medians on a
# loaded host are 10-50x its idle figures (PEERS.md); passive waiting keeps them
# close to those. Override by exporting OMP_WAIT_POLICY.
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
"$py" bench/peers.py --seqnet "$out" ${only:+--only "$only"}
