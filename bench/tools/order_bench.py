#!/usr/bin/env python3
"""Is a workload slower after other workloads in the same process?

    python3 bench/tools/order_bench.py ROUNDS BIN WORKLOAD [BEFORE ...]

Runs one bench binary (`bench` example build) on WORKLOAD alone and, for
each BEFORE (a comma-separated list of workloads), on `BEFORE,WORKLOAD` in
one process; the cases alternate within each round (order reversed every
other round, `--no-machine-line`, RAYON_NUM_THREADS=2 unless set). Prints
WORKLOAD's median of the per-run medians and of the per-run minima per case,
and each case's ratio to the case alone. Only these ratios mean anything on
a loaded host: every case sees the same noise. Environment variables for
one case: `BEFORE` may start with `VAR=value;` (e.g.
`MALLOC_MMAP_THRESHOLD_=131072;lstm-infer`), and a BEFORE of just
`VAR=value;` runs WORKLOAD alone with it.
"""
import os
import statistics
import subprocess
import sys


def parse_case(before):
    env = {}
    while ";" in before:
        var, before = before.split(";", 1)
        k, v = var.split("=", 1)
        env[k] = v
    return before, env


def run(binary, workloads, extra, want):
    env = dict(os.environ)
    env.setdefault("RAYON_NUM_THREADS", "2")
    env.update(extra)
    out = subprocess.run([binary, workloads, "--no-machine-line"], capture_output=True,
                         text=True, check=True, env=env).stdout
    for line in out.splitlines():
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if kv.get("workload") == want:
            return float(kv["median_ms"]), float(kv["min_ms"])
    raise SystemExit(f"no {want} line in the output of {binary} {workloads}")


def main():
    rounds, binary, workload = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    cases = [("alone", workload, {})]
    for before in sys.argv[4:]:
        prefix, env = parse_case(before)
        wl = f"{prefix},{workload}" if prefix else workload
        label = " ".join([f"{k}={v}" for k, v in env.items()] + [f"after {prefix}" if prefix else "alone"])
        cases.append((label, wl, env))
    got = {label: [] for label, _, _ in cases}
    for r in range(rounds):
        for label, wl, env in (cases if r % 2 == 0 else cases[::-1]):
            got[label].append(run(binary, wl, env, workload))
    base = None
    for label, _, _ in cases:
        v = got[label]
        med = statistics.median(x[0] for x in v)
        mn = statistics.median(x[1] for x in v)
        if base is None:
            base = (med, mn)
        print(f"{workload} {label:60s} median_ms={med:9.2f} min_ms={mn:9.2f} "
              f"ratio_median={med / base[0]:.3f} ratio_min={mn / base[1]:.3f} "
              f"runs={' '.join(f'{x[0]:.1f}' for x in v)}")


if __name__ == "__main__":
    main()
