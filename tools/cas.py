#!/usr/bin/env python3
"""Classification Accuracy Score (Ravuri & Vinyals, NeurIPS 2019) of a synthetic stream.

A classifier trained on REAL images (e.g. `stream-train configs/fmnist.toml`) labels images that
the generator made from the run config's prompt stream; the score is its top-1 against the class
the prompt stream assigned. High CAS means the generated images look like their class to a model
that has only ever seen real ones.

    tools/cas.py --classifier runs/fmnist/checkpoints/<newest>.ckpt --classifier-config runs/fmnist/config.toml \\
                 --config configs/smoke.toml [--images 2000] [--templates c,c_hc,...] [--set k=v]... [--json OUT]

For every template t the images 0..N-1 of the stream restricted to t (prompts.templates = [t]) are
made by `stream-sample --config CFG --index 0 --count N`, exactly as a run makes them, sorted into
class folders and scored by `stream-eval`. Generated images are 32x32 with the 28x28 item padded
by 2 pixels (models/fmnist-sd), so they are evaluated with resize 32 + centre crop 28, which gives
back the real images' framing. Also prints the classifier's top-1 on real t10k for comparison.
Standard library only; runs the programs of --bin (default build/bin, or $SYNTH_BUILD_DIR/bin).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

DEFAULT_BIN = os.path.join(os.environ.get("SYNTH_BUILD_DIR", "build"), "bin")
BIN = DEFAULT_BIN  # --bin
TEMPLATES = ["c", "c_hc", "c_dc", "multiple_c_hc", "multiple_different_c_hc", "c_hc_inside_b"]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"cas.py: {' '.join(cmd[:2])} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def sets_args(sets):
    return [a for s in sets for a in ("--set", s)]


def make_tree(args, template, out):
    """Images 0..N-1 of the stream restricted to `template`, as out/<class>/<index>.png."""
    sets = sets_args(args.set + [f'prompts.templates=["{template}"]', "prompts.template_weights=[]"])
    listing = run([f"{BIN}/stream-sample", "--config", args.config, "--list-prompts", str(args.images)] + sets)
    classes = {}
    for line in listing.splitlines()[1:]:
        fields = line.split("\t")
        classes[int(fields[0])] = fields[1]
    png = os.path.join(out, "png")
    run([f"{BIN}/stream-sample", "--config", args.config, "--index", "0", "--count", str(args.images), "--out", png] + sets)
    for index, label in classes.items():
        os.makedirs(os.path.join(out, "tree", label), exist_ok=True)
        os.replace(os.path.join(png, f"{index}.png"), os.path.join(out, "tree", label, f"{index}.png"))
    return os.path.join(out, "tree")


def top1(args, extra):
    out = run([f"{BIN}/stream-eval", "--checkpoint", args.classifier, "--config", args.classifier_config, "--json"] + extra)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", required=True, help="checkpoint of a classifier trained on real images")
    p.add_argument("--classifier-config", required=True, help="that run's config.toml")
    p.add_argument("--config", required=True, help="the synthetic run's config (prompt stream and [generator])")
    p.add_argument("--images", type=int, default=2000, help="generated images per template")
    p.add_argument("--templates", default=",".join(TEMPLATES))
    p.add_argument("--set", action="append", default=[], help="override for --config, e.g. generator.guidance=0")
    p.add_argument("--json", help="write the scores here")
    p.add_argument("--keep", help="keep the generated class-folder trees under this folder")
    p.add_argument("--bin", default=DEFAULT_BIN, help="folder of stream-sample and stream-eval")
    args = p.parse_args()
    global BIN
    BIN = args.bin
    work = args.keep or tempfile.mkdtemp(prefix="cas-")
    scores, start = {}, time.time()
    try:
        for t in args.templates.split(","):
            t0 = time.time()
            tree = make_tree(args, t, os.path.join(work, t))
            res = top1(args, ["--set", "eval.resize=32", "--set", "eval.crop=28", "--eval", f"{t}={tree},layout=sorted"])
            scores[t] = res[0]["top1"]
            print(f"CAS {t:<26} {100 * scores[t]:6.2f}%  ({args.images} images, {time.time() - t0:.0f} s)", flush=True)
        real = top1(args, [])[0]
        overall = sum(scores.values()) / len(scores)
        print(f"CAS overall {100 * overall:.2f}%; the classifier on real {real['set']}: {100 * real['top1']:.2f}%"
              f" ({time.time() - start:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"per_template": scores, "overall": overall, "real": {real["set"]: real["top1"]},
                           "images_per_template": args.images, "config": args.config, "set": args.set}, f, indent=1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
