#!/usr/bin/env bash
# Test accuracies of seqnet and PyTorch with the same networks and options
# (the LSTM, cnn1d and transformer examples and their bench/*_vowels.py twins)
# on the UCR/UEA sets in data/, one seed after another, one thread each.
# Writes one line per run to $OUT (default out/accuracy.log):
#   <tool> <network> <set> <seed> <accuracy %> <training seconds>
# and bench/accuracy_table.py summarizes it.
#
#   bench/accuracy.sh [SEEDS (default "0 1 2 3 4")] [SETS] [NETWORKS]
#   PYTHON=/path/to/python (with torch) bench/accuracy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2 3 4"}
SETS=${2:-"JapaneseVowels BasicMotions GunPoint"}
NETS=${3:-"lstm cnn1d transformer"}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-out/accuracy.log}
mkdir -p "$(dirname "$OUT")"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
cargo build --release --example japanese_vowels --example cnn1d_japanese_vowels \
    --example transformer_japanese_vowels
example() {
    case $1 in
        lstm) echo japanese_vowels ;;
        *) echo "$1_japanese_vowels" ;;
    esac
}
for set in $SETS; do
    for net in $NETS; do
        for seed in $SEEDS; do
            r=$(target/release/examples/"$(example "$net")" --data "$set" --seed "$seed")
            acc=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' <<<"$r")
            secs=$(sed -n 's/^training time \([0-9.]*\) s.*/\1/p' <<<"$r")
            echo "seqnet $net $set $seed $acc $secs" | tee -a "$OUT"
            r=$("$PYTHON" bench/"$net"_vowels.py --data "$set" --seeds "$seed" --threads 1 | tail -1)
            acc=$(sed -n 's/.*test_accuracy=\([0-9.]*\)%.*/\1/p' <<<"$r")
            secs=$(sed -n 's/.*train_s=\([0-9.]*\).*/\1/p' <<<"$r")
            echo "pytorch $net $set $seed $acc $secs" | tee -a "$OUT"
        done
    done
done
