#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 80 lines), longest first.

Usage: python3 bench/tools/long_functions.py [LIMIT] [ROOT...]
A function runs from its `fn` line to the closing brace at the same indent.
"""
import re
import sys
from pathlib import Path

limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
roots = [Path(p) for p in sys.argv[2:]] or [Path("crates"), Path("src"), Path("examples"), Path("tests")]
found = []
for root in roots:
    for path in root.rglob("*.rs"):
        if "target" in path.parts:
            continue
        lines = path.read_text().split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)(pub(\([^)]*\))? )?(const )?(unsafe )?(async )?fn (\w+)", line)
            if not m or line.rstrip().endswith(";"):
                continue
            indent = m.group(1)
            for j in range(i + 1, len(lines)):
                if lines[j] == indent + "}":
                    n = j - i + 1
                    if n > limit:
                        found.append((n, f"{path}:{i + 1}", m.group(7)))
                    break
for n, where, name in sorted(found, reverse=True):
    print(f"{n:5d}  {name:40s} {where}")
print(f"{len(found)} functions over {limit} lines")
