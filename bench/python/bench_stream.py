"""The Python iterator's overhead: images/s of `synthstream.Stream` against the C++ producers'
rate (`stream-bench CONFIG --generator-only`, the peer) for the same config, measured in the same
run on the same machine. Prints both and the ratio (goal: >= 0.95).

    PYTHONPATH=build/python .venv/bin/python bench/python/bench_stream.py configs/smoke.toml --images 1024

Both sides count the same n images from the moment the producers start, with the models already
loaded (stream-bench also warms up on one generator batch of other indices first).
"""
import argparse
import json
import os
import pathlib
import subprocess
import time

import synthstream

REPO = pathlib.Path(__file__).resolve().parents[2]
p = argparse.ArgumentParser()
p.add_argument("config")
p.add_argument("--images", type=int, default=1024)
p.add_argument("--set", action="append", default=[])
p.add_argument("--repeat", type=int, default=2, help="alternate C++ and Python runs; the best of each counts")
p.add_argument("--build", default=os.environ.get("SYNTH_BUILD_DIR", str(REPO / "build")))
args = p.parse_args()

cfg = synthstream.load_config(args.config, args.set)
n = args.images - args.images % cfg.batch_size
sets = args.set + [f"train.total_images={n}"]
cmd = [str(pathlib.Path(args.build) / "bin" / "stream-bench"), args.config, "--generator-only", "--json",
       "--images", str(n)]
for s in args.set:
    cmd += ["--set", s]


def cpp_rate():
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["stages"][0]["images_per_s"]


def python_rate():
    stream = synthstream.Stream(args.config, overrides=sets)  # loads the models
    t0, images = time.perf_counter(), 0
    for batch in stream:
        images += batch[0].shape[0]
    return images / (time.perf_counter() - t0)


peers, rates = [], []
for _ in range(args.repeat):  # alternated, so a slow spell of the machine hits both sides
    peers.append(cpp_rate())
    rates.append(python_rate())
peer, rate = max(peers), max(rates)
med = lambda xs: sorted(xs)[len(xs) // 2]
print(f"C++ producers (stream-bench --generator-only): {peer:.1f} images/s (runs: {', '.join(f'{x:.1f}' for x in peers)})")
print(f"synthstream.Stream (Python iterator):          {rate:.1f} images/s (runs: {', '.join(f'{x:.1f}' for x in rates)}), {n} images each")
print(f"ratio Python / C++: {rate / peer:.3f} best against best, {med(rates) / med(peers):.3f} median against median")
