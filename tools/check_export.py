#!/usr/bin/env python3
"""Checks a stream-export file against torchvision: loads it and compares the logits.

    build/bin/stream-export --checkpoint runs/x/checkpoints/ckpt-....pt --out model.safetensors \
        --dump-logits reference.safetensors
    .venv/bin/python3 tools/check_export.py model.safetensors reference.safetensors

Loads model.safetensors into torchvision.models.<arch>(num_classes=...) with strict load_state_dict
(arch and class count from the file's metadata; width 1 only, torchvision has no width multiplier),
runs it in eval mode (fp32, CPU) on the dump's "input" and compares with the dump's "logits" from
LibTorch. Needs torch and torchvision (the project venv: .venv/bin/python3); the `safetensors` package is
used when installed, else the files are read here (the format is an 8-byte little-endian header
length, a JSON header of dtype/shape/data_offsets per tensor, then the raw bytes).
Exit status 0 when they agree within --atol with the same top-1 everywhere, 1 otherwise.
"""
import argparse
import json
import struct
import sys

import torch
import torchvision

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def read_safetensors(path):
    """(tensors by name, metadata) of a safetensors file."""
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(path), meta
    except ImportError:
        pass
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    data = blob[8 + length:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=_DTYPES[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"])
    return tensors, meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="stream-export --out file")
    parser.add_argument("reference", help="stream-export --dump-logits file")
    parser.add_argument("--atol", type=float, default=1e-3, help="largest allowed |difference| of a logit")
    args = parser.parse_args()

    state, meta = read_safetensors(args.model)
    if float(meta["width"]) != 1.0:
        print(f"{args.model}: width {meta['width']}: torchvision's ResNet has width 1 only", file=sys.stderr)
        return 1
    model = getattr(torchvision.models, meta["arch"])(num_classes=int(meta["num_classes"]))
    model.load_state_dict(state, strict=True)
    model.eval()

    ref, _ = read_safetensors(args.reference)
    with torch.no_grad():
        logits = model(ref["input"])
    diff = (logits - ref["logits"]).abs().max().item()
    same_top1 = bool((logits.argmax(1) == ref["logits"].argmax(1)).all())
    params = sum(p.numel() for p in model.parameters())
    print(f"{meta['arch']} ({params} parameters), {meta['num_classes']} classes, torchvision {torchvision.__version__}: "
          f"max |logit difference| {diff:.3g} (logits up to {ref['logits'].abs().max().item():.3g}), "
          f"same top-1 for all {len(logits)} images: {same_top1}")
    return 0 if diff <= args.atol and same_top1 else 1


if __name__ == "__main__":
    sys.exit(main())
