#!/usr/bin/env python3
"""Checks a stream-export file against torchvision (needs torch, torchvision, safetensors; not run in CI).

    build/bin/stream-export --checkpoint runs/x/checkpoints/ckpt-....pt --out model.safetensors \
        --dump-logits reference.safetensors
    python3 bench/check_export.py model.safetensors reference.safetensors

Loads model.safetensors into torchvision.models.<arch>(num_classes=...) with strict load_state_dict
(arch and class count from the file's metadata; width 1 only, torchvision has no width multiplier),
runs it in eval mode on the dump's "input" and compares with the dump's "logits" from LibTorch.
Exit status 0 when they agree within --atol, 1 otherwise.
"""
import argparse
import sys

import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="stream-export --out file")
    parser.add_argument("reference", help="stream-export --dump-logits file")
    parser.add_argument("--atol", type=float, default=1e-3, help="largest allowed |difference| of a logit")
    args = parser.parse_args()

    with safe_open(args.model, framework="pt") as f:
        meta = f.metadata()
    if float(meta["width"]) != 1.0:
        print(f"{args.model}: width {meta['width']}: torchvision's ResNet has width 1 only", file=sys.stderr)
        return 1
    model = getattr(torchvision.models, meta["arch"])(num_classes=int(meta["num_classes"]))
    model.load_state_dict(load_file(args.model), strict=True)
    model.eval()

    ref = load_file(args.reference)
    with torch.no_grad():
        logits = model(ref["input"])
    diff = (logits - ref["logits"]).abs().max().item()
    same_top1 = bool((logits.argmax(1) == ref["logits"].argmax(1)).all())
    print(f"{meta['arch']}, {meta['num_classes']} classes: max |logit difference| {diff:.3g}, "
          f"same top-1 for all {len(logits)} images: {same_top1}")
    return 0 if diff <= args.atol and same_top1 else 1


if __name__ == "__main__":
    sys.exit(main())
