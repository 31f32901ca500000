#!/usr/bin/env python3
"""Summarizes bench/accuracy.sh's log (default out/accuracy.log) as a Markdown
table: per network and data set, each tool's seeds, mean ± sample standard
deviation, range, and the mean training time.

    python3 bench/accuracy_table.py [out/accuracy.log] [--pairs]

--pairs: one row per network and data set, seqnet and PyTorch side by side.
"""

import statistics
import sys
from collections import defaultdict


def cell(by_seed):
    accs = [a for a, _ in by_seed.values()]
    sd = statistics.stdev(accs) if len(accs) > 1 else float("nan")
    return f"{statistics.mean(accs):.2f}% ± {sd:.2f} ({len(accs)})"


def pairs(runs):
    print("| network | data set | seqnet: mean ± sd (seeds) | PyTorch: mean ± sd (seeds) |")
    print("|---|---|---|---|")
    order = {"lstm": 0, "cnn1d": 1, "transformer": 2}
    sets = {"JapaneseVowels": 0, "BasicMotions": 1, "GunPoint": 2}
    keys = sorted({(n, d) for n, d, _ in runs}, key=lambda k: (sets.get(k[1], 9), order.get(k[0], 9)))
    for net, data in keys:
        both = [cell(runs[(net, data, t)]) if (net, data, t) in runs else "–" for t in ("seqnet", "pytorch")]
        print(f"| {net} | {data} | {both[0]} | {both[1]} |")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path = args[0] if args else "out/accuracy.log"
    runs = defaultdict(dict)
    for line in open(path):
        parts = line.split()
        if len(parts) != 6:
            continue
        tool, net, data, seed, acc, secs = parts
        runs[(net, data, tool)][int(seed)] = (float(acc), float(secs))
    if "--pairs" in sys.argv:
        return pairs(runs)
    print("| network | data set | tool | seeds | mean ± sd | min–max | training s |")
    print("|---|---|---|---|---|---|---|")
    for (net, data, tool), by_seed in sorted(runs.items()):
        accs = [a for a, _ in by_seed.values()]
        secs = [s for _, s in by_seed.values()]
        sd = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        seeds = sorted(by_seed)
        span = f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ",".join(map(str, seeds))
        print(
            f"| {net} | {data} | {tool} | {span} ({len(accs)}) | {statistics.mean(accs):.2f}% ± {sd:.2f} "
            f"| {min(accs):.2f}–{max(accs):.2f}% | {statistics.mean(secs):.1f} |"
        )


if __name__ == "__main__":
    main()
