"""The PyTorch-eager peer of bench_train_step: torchvision ResNet, channels-last, autocast, SGD,
the same batch, crops and loss. Prints "images/s <rate>" for the C++ bench to read."""
import argparse
import sys
import time

import torch
import torchvision


def main():
    # torch.amp.GradScaler(device) and channels-last autocast need torch 2; bench_train_step runs
    # this with the project venv's python (SYNTH_PYTHON), whose torch is LibTorch's own.
    if int(torch.__version__.split(".")[0]) < 2:
        sys.exit(f"peer_train_step.py needs torch >= 2, {sys.executable} has {torch.__version__}: "
                 "run it with the project venv's python (.venv/bin/python3)")
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--crops", default="224", choices=["224", "multi"])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    dev = torch.device(a.device)
    cl = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    model = getattr(torchvision.models, a.arch)(num_classes=1000).to(dev, memory_format=cl).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[a.precision]
    scaler = torch.amp.GradScaler(dev.type, enabled=a.precision == "fp16")
    groups = [(224, a.batch)] + ([(96, a.batch * 8)] if a.crops == "multi" else [])
    data = [(torch.randn(n, 3, s, s, device=dev).contiguous(memory_format=cl), torch.randint(0, 1000, (n,), device=dev))
            for s, n in groups]
    crops = sum(n for _, n in groups)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = sum(torch.nn.functional.cross_entropy(model(x), y, reduction="sum") for x, y in data) / crops
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    s = time.perf_counter() - t0
    print(f"PyTorch eager {a.arch} {a.precision} batch {a.batch}, crops {a.crops}, {a.device}: "
          f"{a.batch * a.steps / s:.1f} images/s ({1e3 * s / a.steps:.1f} ms/step)")
    print(f"images/s {a.batch * a.steps / s:.3f}")


if __name__ == "__main__":
    main()
