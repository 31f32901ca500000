"""Summarizes several outputs of bench/compare.sh: per workload, seqnet's
run medians (min, median, max), the best peer's, and the seqnet/peer ratios.

    python3 bench/tools/runs_summary.py run1.txt run2.txt ...

Reads the `workload=<name> median_ms=<x>` lines of seqnet and the ratio table
that bench/peers.py prints after `# seqnet / peer`.
"""

import statistics
import sys


def parse(path):
    """(seqnet medians by workload, ratio rows by workload) of one run."""
    ours, rows = {}, {}
    in_table = in_peers = False
    with open(path) as f:
        for line in f:
            if line.startswith("# peers"):
                in_peers = True
            if line.startswith("# seqnet / peer"):
                in_table = True
                continue
            if in_table:
                parts = line.split()
                if len(parts) >= 7 and parts[0] != "workload":
                    try:
                        rows[parts[0]] = (parts[2], float(parts[3]), float(parts[4]), float(parts[5]))
                    except ValueError:
                        pass
                continue
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "workload" in kv and "median_ms" in kv and not in_peers:
                ours.setdefault(kv["workload"], float(kv["median_ms"]))
    return ours, rows


def spread(values):
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def main(paths):
    runs = [parse(p) for p in paths]
    names = []
    for ours, _ in runs:
        names += [n for n in ours if n not in names]
    print(f"# {len(runs)} runs; each cell min / median / max over the runs")
    print("| workload | seqnet ms | best peer ms | seqnet / peer | target | runs met |")
    print("|---|---|---|---|---|---|")
    for name in names:
        ours = [r[0][name] for r in runs if name in r[0]]
        rows = [r[1][name] for r in runs if name in r[1]]
        peer = spread([row[1] for row in rows]) + f" ({rows[0][0]})" if rows else "–"
        ratio = spread([row[2] for row in rows]) if rows else "–"
        target = f"{rows[0][3]:.3f}" if rows else "–"
        met = f"{sum(row[2] <= row[3] for row in rows)}/{len(rows)}" if rows else "–"
        print(f"| {name} | {spread(ours)} | {peer} | {ratio} | {target} | {met} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
