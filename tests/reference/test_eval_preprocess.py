"""Evaluation preprocessing (shorter side to eval.resize = 256, centre crop eval.crop = 224,
normalize) against torchvision, on real JPEGs of several sizes and aspect ratios (a real photograph
re-encoded by Pillow at 12 sizes: landscape, portrait, 10:3 and 3:10 panoramas, square, smaller than
the crop so the resize enlarges, sides whose resized length has a fraction >= .5).

Our side is `reference_probe eval-preprocess`: our JPEG decoder and synth::eval_preprocess, the
function stream-eval's decoder threads call (eval/evaluator.cpp).
  - test_decoder_matches_pillow: our libjpeg-turbo decode = Pillow's, within 1 level (IDCT
    implementations may differ in the last bit; measured 0).
  - test_filter_matches_torchvision: the resampling filter, on the source box our evaluator
    resamples (the box rule of src/augment/simple_augment.cpp, restated below), against
    torchvision's resized_crop (bilinear, antialias) on float tensors: <= 0.05/255 (float rounding;
    measured ~0.003/255).
  - test_matches_resize_centercrop: the whole preprocessing against torchvision's
    Resize(256) + CenterCrop(224) + ToTensor + Normalize on PIL images (the standard ImageNet
    evaluation): <= 1.5/255, the room Pillow's two-pass integer resize needs (each pass rounds to
    8 bits: up to ~1/255 together). Known to fail today: our one-pass resampling of a rounded source
    box is not Resize-then-CenterCrop (strict xfail, see the reason).
"""
import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

import refsupport as R

FAMILY = "eval"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
RESIZE, CROP = 256, 224
SIZES = [None, (500, 375), (375, 500), (640, 427), (427, 640), (1000, 300), (300, 1000), (256, 256), (200, 150),
         (300, 224), (333, 500), (257, 999)]  # None: the photograph as shipped (a JPEG or PNG)


@pytest.fixture(scope="session")
def preprocessed(tmp_path_factory):
    photos = R.photos_or_skip(pytest)
    folder = tmp_path_factory.mktemp("eval_images")
    paths = []
    for k, size in enumerate(SIZES):
        src = photos[k % len(photos)]
        if size is None:
            paths.append(src)
            continue
        im = Image.open(src).convert("RGB").resize(size, Image.Resampling.LANCZOS)
        paths.append(folder / f"img{k}_{size[0]}x{size[1]}.jpg")
        im.save(paths[-1], quality=90)
    R.run_ok(["reference_probe", "eval-preprocess", "--out", folder / "ours.safetensors", *paths])
    out = R.load_tensors(folder / "ours.safetensors")
    return [(p, out[f"decoded.{k}"], out[f"image.{k}"]) for k, p in enumerate(paths)]


def pixel_error(ours, ref):
    """max |ours - ref| in 8-bit levels of the un-normalized image."""
    return ((ours - ref).abs() * torch.tensor(STD).view(3, 1, 1)).max().item() * 255


def test_decoder_matches_pillow(preprocessed):
    for path, decoded, _ in preprocessed:
        pil = torch.from_numpy(np.array(Image.open(path).convert("RGB")))
        assert decoded.shape == pil.shape, path
        err = R.record(FAMILY, "decoded pixels vs Pillow (levels)", (decoded.int() - pil.int()).abs().max().item(), 1)
        assert err <= 1, f"{path}: our decoder differs from Pillow's by {err} levels"


def our_box(width, height):
    """The source box our evaluator resamples onto the crop (simple_augment.cpp eval_preprocess_into):
    the shorter side scales to RESIZE, the longer to round-half-even(side x factor), the centre crop
    window mapped back to source pixels, rounded, centred with floor division."""
    wide = width >= height
    f = RESIZE / (height if wide else width)
    rh = RESIZE if wide else max(1, round(height * f))
    rw = max(1, round(width * f)) if wide else RESIZE
    bh = max(1, min(height, round(min(CROP, rh) / f)))
    bw = max(1, min(width, round(min(CROP, rw) / f)))
    return (height - bh) // 2, (width - bw) // 2, bh, bw


def test_filter_matches_torchvision(preprocessed):
    for path, _, ours in preprocessed:
        pil = Image.open(path).convert("RGB")
        top, left, h, w = our_box(*pil.size)
        ref = F.normalize(F.resized_crop(F.to_tensor(pil), top, left, h, w, [CROP, CROP],
                                         interpolation=T.InterpolationMode.BILINEAR, antialias=True), MEAN, STD)
        err = R.record(FAMILY, "filter on our box vs torchvision (levels)", pixel_error(ours, ref), 0.05)
        assert err <= 0.05, f"{path} {pil.size}: {err:.3f}/255"


@pytest.mark.xfail(strict=True, reason="eval_preprocess resamples a source box rounded to whole source pixels in one "
                   "pass, and rounds the resized long side to nearest where torchvision truncates: on detailed "
                   "photographs that is up to ~100 levels (mean 5-10) away from Resize(256) + CenterCrop(224)")
def test_matches_resize_centercrop(preprocessed):
    reference = T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP), T.ToTensor(), T.Normalize(MEAN, STD)])
    failures = []
    for path, _, ours in preprocessed:
        pil = Image.open(path).convert("RGB")
        err = R.record(FAMILY, "vs Resize+CenterCrop on PIL (levels)", pixel_error(ours, reference(pil)), 1.5,
                       known_gap=True)
        if err > 1.5:
            failures.append(f"{pil.size}: {err:.1f}/255")
    assert not failures, "differs from torchvision's Resize + CenterCrop: " + ", ".join(failures)
