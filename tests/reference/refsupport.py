"""Shared helpers of the live reference suite: where the binaries are, running them, safetensors,
error measures, and building Stable Diffusion v1 components with diffusers / transformers from a
config and a seed, saved in the diffusers layout our loaders read.

Nothing here is copied from diffusers, transformers or torchvision: they are imported and used as
the oracles.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SYNTH_BUILD_DIR", REPO / "build")).resolve()
BIN = BUILD / "bin"
PROBE = BUILD / "tests" / "reference" / "reference_probe"
TOKENIZER_DIR = REPO / "configs" / "data" / "clip-tokenizer"


def exe(name):
    """Path of a built main (stream-sample, ...) or the probe; a clear failure when not built."""
    path = PROBE if name == "reference_probe" else BIN / name
    if not path.is_file():
        raise AssertionError(f"{path} is not built: build the project first (tools/build.sh), or set "
                             f"SYNTH_BUILD_DIR to the build folder")
    return str(path)


def run(args, *, input=None, timeout=900, cwd=REPO):
    """Runs a command (first element a main's name or a path) and returns the CompletedProcess."""
    args = [exe(args[0]) if "/" not in str(args[0]) else str(args[0])] + [str(a) for a in args[1:]]
    return subprocess.run(args, input=input, capture_output=True, encoding="utf-8", timeout=timeout, cwd=cwd)


def run_ok(args, **kw):
    r = run(args, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, args))}\nexit {r.returncode}\nstderr: {r.stderr}\nstdout: {r.stdout[-2000:]}"
    return r


MEASURED = []


class Timer:
    """Prints the seconds each step of a slow fixture took (shown with pytest -s)."""

    def __init__(self, what):
        self.what, self.t = what, time.time()

    def __call__(self, step):
        now = time.time()
        print(f"[{self.what}] {step}: {now - self.t:.1f} s", file=sys.stderr, flush=True)
        self.t = now


def record(family, what, value, tolerance, known_gap=False):
    """Notes one measured error next to its tolerance (conftest prints the largest per check);
    known_gap: a comparison marked as a known difference (strict xfail)."""
    MEASURED.append({"family": family, "what": what, "value": float(value), "tolerance": float(tolerance),
                     "known_gap": bool(known_gap)})
    return value


def rel_l2(ours, ref):
    ours, ref = ours.double(), ref.double()
    return ((ours - ref).norm() / ref.norm()).item()


def save_tensors(path, tensors):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def load_tensors(path):
    return load_file(str(path))


# --- random weights -----------------------------------------------------------------------------

# Query/key projections get this factor on top of the plain bound, so attention is peaked as in
# trained models: with the plain bound the softmax is nearly uniform and hides errors of the
# attention itself (a wrong scale at head dim 80 moved the full-size U-Net output by ~1e-3 relative
# L2 with it, by ~1e-2 with a factor of 3).
QK_GAIN = 3.0
QK_NAMES = ("to_q.weight", "to_k.weight", "q_proj.weight", "k_proj.weight")


@torch.no_grad()
def init_random(module, seed):
    """Seeded random weights, in place, cheaper than the modules' own initialisation (no
    per-layer kaiming computations): every matrix/kernel U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's
    default bound; query/key projections QK_GAIN times that), every bias U(-0.2, 0.2), every norm
    scale U(0.75, 1.25). Biases and norm scales are not left at 0/1, so a bias or norm parameter
    loaded into the wrong place changes the output."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            bound = p[0].numel() ** -0.5 * (QK_GAIN if name.endswith(QK_NAMES) else 1.0)
            p.uniform_(-bound, bound, generator=g)
        elif name.endswith("bias"):
            p.uniform_(-0.2, 0.2, generator=g)
        else:
            p.uniform_(0.75, 1.25, generator=g)
    module.eval()
    return module


def build_meta(cls, *args, buffers=(), **kw):
    """Builds a module on the meta device (no memory, no init), then allocates it on the CPU.
    to_empty leaves buffers uninitialized: every buffer must be named in `buffers` (the caller sets
    them)."""
    with torch.device("meta"):
        m = cls(*args, **kw)
    names = {n for n, _ in m.named_buffers()}
    assert names == set(buffers), f"{cls.__name__} has buffers {sorted(names)}, expected {sorted(buffers)}"
    return m.to_empty(device="cpu")


# --- Stable Diffusion v1 components ---------------------------------------------------------------

# SD v1.4's scheduler/scheduler_config.json as published (keys it lacks take the defaults of the
# scheduler class that reads it, in diffusers and in our make_scheduler alike).
SD14_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.2.2",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

SD14_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8)

SD14_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=512)

# CLIP ViT-L/14's text tower as SD v1 uses it (openai/clip-vit-large-patch14 text_config).
SD14_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1)


def make_unet(config, seed):
    from diffusers import UNet2DConditionModel
    return init_random(build_meta(UNet2DConditionModel, **config), seed)


def make_vae(config, seed):
    from diffusers import AutoencoderKL
    return init_random(build_meta(AutoencoderKL, **config), seed)


def make_text_encoder(config, seed):
    from transformers import CLIPTextConfig, CLIPTextModel
    cfg = CLIPTextConfig(**config)
    with torch.device("meta"):
        names = [n for n, _ in CLIPTextModel(cfg).named_buffers()]
    assert len(names) == 1 and names[0].endswith("embeddings.position_ids"), names
    m = build_meta(CLIPTextModel, cfg, buffers=names)
    with torch.no_grad():
        m.get_buffer(names[0]).copy_(torch.arange(cfg.max_position_embeddings).expand(1, -1))
    return init_random(m, seed)


def hf_tokenizer():
    from transformers import CLIPTokenizer
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    tokenizer.model_max_length = 77  # SD v1's tokenizer_config.json; the folder has only the BPE files
    return tokenizer


def tokenize(tokenizer, texts):
    """input_ids [len(texts), 77] as the SD pipeline makes them."""
    return tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


def save_sd_dir(path, *, text_encoder=None, unet=None, vae=None, scheduler=SD14_SCHEDULER):
    """A diffusers SD v1 directory: model_index.json, tokenizer/ (the real CLIP BPE files),
    scheduler/, and each given component by its own save_pretrained (safetensors)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
             "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
             "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    (path / "tokenizer").mkdir(exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(TOKENIZER_DIR / name, path / "tokenizer" / name)
    (path / "scheduler").mkdir(exist_ok=True)
    (path / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
    for name, module in (("text_encoder", text_encoder), ("unet", unet), ("vae", vae)):
        if module is not None:
            module.save_pretrained(str(path / name), safe_serialization=True)
    return path


def patch_json(path, **changes):
    """Rewrites keys of a saved config.json (for configs diffusers builds but saves differently)."""
    path = Path(path)
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg, indent=2))


def probe_models(model_dir, inputs, workdir):
    """Runs `reference_probe models` on the given inputs; returns (CompletedProcess, outputs or None)."""
    workdir = Path(workdir)
    save_tensors(workdir / "probe_in.safetensors", inputs)
    out = workdir / "probe_out.safetensors"
    r = run(["reference_probe", "models", model_dir, workdir / "probe_in.safetensors", out])
    return r, (load_tensors(out) if r.returncode == 0 else None)


def one_line_error(r, program):
    """The stderr of a refused input: exit 2 and exactly one line '<program>: error: ...'."""
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, f"expected exit 2 (bad input), got {r.returncode}; stderr: {r.stderr}"
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), f"not one error line: {r.stderr!r}"
    return lines[0]


# --- real photographs -----------------------------------------------------------------------------

# Real photographs: scikit-image's sample photographs (public domain or CC0, see its
# skimage/data/README.txt), from the pinned scikit-image in the project venv
# (tools/requirements.txt), so every machine tests on the same files. $SYNTH_REFERENCE_PHOTOS (a
# folder of .jpg/.png files) adds more.
SKIMAGE_PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "rocket.jpg"]


def find_photos():
    """Paths of real photographs (colour, at least 200 pixels a side), deduplicated by content."""
    import glob
    import hashlib

    import skimage
    from PIL import Image

    candidates = []
    env = os.environ.get("SYNTH_REFERENCE_PHOTOS")
    if env:
        candidates += sorted(glob.glob(os.path.join(env, "*.jp*g")) + glob.glob(os.path.join(env, "*.png")))
    data = Path(skimage.__file__).parent / "data"
    candidates += [str(data / n) for n in SKIMAGE_PHOTOS]
    photos, seen = [], set()
    for path in candidates:
        if not os.path.isfile(path):
            continue
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA", "P", "YCbCr") and min(im.size) >= 200:
                photos.append(path)
    return photos


def photos_or_skip(pytest):
    photos = find_photos()
    if not photos:  # scikit-image is pinned in tools/requirements.txt: a missing photo is a broken install
        pytest.fail("no real photographs found in scikit-image's data folder: run tools/install-deps.sh")
    return photos
