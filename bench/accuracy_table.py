#!/usr/bin/env python3
"""Summarizes bench/accuracy.sh's log (default out/accuracy.log) as a Markdown
table: per network and data set, each tool's seeds, mean ± sample standard
deviation, range, and the mean training time.

    python3 bench/accuracy_table.py [out/accuracy.log]
"""

import statistics
import sys
from collections import defaultdict


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "out/accuracy.log"
    runs = defaultdict(dict)
    for line in open(path):
        parts = line.split()
        if len(parts) != 6:
            continue
        tool, net, data, seed, acc, secs = parts
        runs[(net, data, tool)][int(seed)] = (float(acc), float(secs))
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
