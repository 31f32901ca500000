#!/usr/bin/env python3
"""Interleaved before/after timing of bench binaries on a loaded host.

    python3 bench/tools/ab_bench.py ROUNDS WORKLOADS BIN [BIN ...]

Runs each binary (`bench` example builds, copied aside) on WORKLOADS
(comma-separated) ROUNDS times, alternating binaries within each round
(`--no-machine-line`, RAYON_NUM_THREADS=2 unless set), then prints per
workload and binary the median of the per-run medians and of the per-run
minima, and each binary's ratio to the first. Only these ratios mean
anything under load: every binary sees the same noise.
"""
import os
import statistics
import subprocess
import sys


def run(binary, workloads):
    env = dict(os.environ)
    env.setdefault("RAYON_NUM_THREADS", "2")
    out = subprocess.run([binary, workloads, "--no-machine-line"], capture_output=True,
                         text=True, check=True, env=env).stdout
    res = {}
    for line in out.splitlines():
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if "workload" in kv:
            res[kv["workload"]] = (float(kv["median_ms"]), float(kv["min_ms"]))
    return res


def main():
    rounds, workloads, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    got = {b: [] for b in bins}
    for r in range(rounds):
        order = bins if r % 2 == 0 else bins[::-1]
        for b in order:
            got[b].append(run(b, workloads))
    for w in workloads.split(","):
        base = None
        for b in bins:
            med = statistics.median(x[w][0] for x in got[b])
            mn = statistics.median(x[w][1] for x in got[b])
            base = base or (med, mn)
            print(f"{w:24s} {os.path.basename(b):10s} median_ms={med:8.2f} min_ms={mn:8.2f} "
                  f"ratio_median={med / base[0]:.3f} ratio_min={mn / base[1]:.3f}")


if __name__ == "__main__":
    main()
