#!/usr/bin/env python3
"""The stage order is the data flow: a file in src/<stage>/ may include only headers of its own
stage, of the stages before it in CMakeLists.txt's `foreach(stage ...)` list, and kernels/ (raw
CUDA, below every stage); src/app/ may include any stage. Prints every violation with its line and
exits 1 if there is one. ctest runs it as test_stage_order."""
import pathlib
import re
import sys

repo = pathlib.Path(__file__).resolve().parents[1]
m = re.search(r"foreach\(stage ([a-z_ ]+)\)", (repo / "CMakeLists.txt").read_text())
order = m.group(1).split()
rank = {s: i for i, s in enumerate(order)}
folders = {p.name for p in (repo / "src").iterdir() if p.is_dir()}
bad = [f"src/{s}/ is not in CMakeLists.txt's stage list {order}" for s in sorted(folders - set(order) - {"app"})]
include = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')
for stage in order:
    for f in sorted((repo / "src" / stage).glob("*.[ch]pp")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            hit = include.match(line)
            if not hit or hit.group(1) == "kernels":
                continue
            dep = hit.group(1)
            if dep not in rank:
                bad.append(f"{f.relative_to(repo)}:{n}: includes {dep}/, which is no stage")
            elif rank[dep] > rank[stage]:
                bad.append(f"{f.relative_to(repo)}:{n}: stage {stage} includes the later stage {dep}/")
print("\n".join(bad) if bad else f"stage order holds: {' -> '.join(order)} (then app)")
sys.exit(1 if bad else 0)
