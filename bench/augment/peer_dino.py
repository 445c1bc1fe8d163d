"""The torchvision + PIL peer of bench_dino: DINO's multi-crop augmentation as the DINO paper
(Caron et al. 2021, appendix and its public training recipe) describes it, written here from that
description with torchvision.transforms on PIL images, on one thread.

Per source image: global crop g (g = 0, 1, ...) uses the first global transform when g is even
and the second when g is odd; then the local crops.
  first global:  RandomResizedCrop(global size, global scale, BICUBIC), flip + colour, blur p=1.0
  second global: RandomResizedCrop(global size, global scale, BICUBIC), flip + colour, blur p=0.1,
                 solarize p=0.2
  local:         RandomResizedCrop(local size, local scale, BICUBIC), flip + colour, blur p=0.5
  flip + colour: RandomHorizontalFlip(0.5), ColorJitter(0.4, 0.4, 0.2, 0.1) with p=0.8,
                 RandomGrayscale(0.2)
  blur:          PIL GaussianBlur with radius U(0.1, 2.0); solarize: PIL ImageOps.solarize (128)
  then ToTensor + Normalize(ImageNet mean, std); the crops of a batch are stacked per size, as
  the data loader's collate does.

Sources are random RGB images already in memory (PIL), as bench_dino's are. Prints
"images/s <source images per second>" for the C++ bench to read.
"""
import argparse
import random
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms as T

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class RandomPILBlur:
    """PIL Gaussian blur with probability p and radius U(lo, hi), as DINO blurs."""

    def __init__(self, p, lo=0.1, hi=2.0):
        self.p, self.lo, self.hi = p, lo, hi

    def __call__(self, img):
        if random.random() >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.lo, self.hi)))


class RandomSolarize:
    """PIL solarize (threshold 128) with probability p."""

    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        return ImageOps.solarize(img) if random.random() < self.p else img


def dino_transforms(a):
    flip_colour = T.Compose([
        T.RandomHorizontalFlip(p=0.5),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ])
    normalize = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    bicubic = T.InterpolationMode.BICUBIC
    gcrop = T.RandomResizedCrop(a.global_size, scale=(a.global_scale_min, a.global_scale_max), interpolation=bicubic)
    lcrop = T.RandomResizedCrop(a.local_size, scale=(a.local_scale_min, a.local_scale_max), interpolation=bicubic)
    first = T.Compose([gcrop, flip_colour, RandomPILBlur(1.0), normalize])
    second = T.Compose([gcrop, flip_colour, RandomPILBlur(0.1), RandomSolarize(0.2), normalize])
    local = T.Compose([lcrop, flip_colour, RandomPILBlur(0.5), normalize])
    return first, second, local


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--global", dest="globals_", type=int, default=1)
    ap.add_argument("--local", type=int, default=8)
    ap.add_argument("--global-size", type=int, default=224)
    ap.add_argument("--local-size", type=int, default=96)
    ap.add_argument("--global-scale-min", type=float, default=0.25)
    ap.add_argument("--global-scale-max", type=float, default=1.0)
    ap.add_argument("--local-scale-min", type=float, default=0.05)
    ap.add_argument("--local-scale-max", type=float, default=0.25)
    ap.add_argument("--images", type=int, default=16)
    a = ap.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    torch.manual_seed(0)
    first, second, local = dino_transforms(a)
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (a.height, a.width, 3), dtype=np.uint8), "RGB")
              for _ in range(a.images)]

    def augment(batch):
        g, l = [], []
        for img in batch:
            g += [(first if k % 2 == 0 else second)(img) for k in range(a.globals_)]
            l += [local(img) for _ in range(a.local)]
        return torch.stack(g) if g else None, torch.stack(l) if l else None

    augment(images[:1])  # warm-up
    t0 = time.perf_counter()
    gl, lo = augment(images)
    s = time.perf_counter() - t0
    crops = a.globals_ + a.local
    assert gl is None or gl.shape == (a.images * a.globals_, 3, a.global_size, a.global_size)
    print(f"{'torchvision+PIL, 1 thread':<22} {a.images:8d} {a.images / s:12.1f} {a.images * crops / s:12.1f} "
          f"{s * 1e3:14.2f}", flush=True)
    print(f"images/s {a.images / s:.6f}", flush=True)


if __name__ == "__main__":
    if int(torch.__version__.split(".")[0]) < 2:
        sys.exit(f"peer_dino.py needs torch >= 2, {sys.executable} has {torch.__version__}: "
                 "run it with the project venv's python (.venv/bin/python3)")
    main()
