"""The diffusers peer of bench_sampler: StableDiffusionPipeline at the bench's settings.

  peer_sampler.py --model DIR [--sizes 256x256,512x384] [--steps N] [--scheduler pndm] [--guidance G]
                  [--device cpu|cuda] [--dtype fp32|fp16] [--batch 1,4] [--reps N]
  peer_sampler.py --build-only --model DIR

When DIR does not exist it is first filled with a full-size random SD v1.4 (U-Net 320/640/1280/1280,
cross-attention 768, 8 heads; CLIP ViT-L/14 text tower, 12 layers, width 768; VAE 128/256/512/512;
SD v1.4's PNDM scheduler config; the repo's CLIP tokenizer files), fixed seeds, diffusers layout,
about 4.3 GB in fp32. Random weights: speed does not depend on them.

Timing, per size and batch: one warm-up call, then --reps timed calls of the pipeline with SDPA
attention, no safety checker, output_type "pt" (VAE decode included, as bench_sampler decodes),
from fixed latents, with the prompt embeddings computed once before the clock (bench_sampler's
embedding cache holds them after its warm-up). Prints "images/s <rate>" per row, in the order
sizes x batches, for the C++ bench to read.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "configs" / "data" / "clip-tokenizer"
PROMPT = "a photo of a papillon, toy spaniel"

# SD v1.4's scheduler/scheduler_config.json as published.
SD14_SCHEDULER = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.2.2", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
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
    act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
SD14_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1)
SCHEDULERS = {"pndm": "PNDMScheduler", "ddim": "DDIMScheduler", "dpmpp2m": "DPMSolverMultistepScheduler",
              "euler": "EulerDiscreteScheduler"}


@torch.no_grad()
def init_random(module, seed):
    """Seeded uniform weights in place (cheap; no per-layer init): matrices and kernels
    U(+-1/sqrt(fan_in)), biases U(+-0.2), norm scales U(0.75, 1.25)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            bound = p[0].numel() ** -0.5
            p.uniform_(-bound, bound, generator=g)
        elif name.endswith("bias"):
            p.uniform_(-0.2, 0.2, generator=g)
        else:
            p.uniform_(0.75, 1.25, generator=g)
    return module.eval()


def on_meta(cls, *args, **kw):
    """Builds a module without memory or init, then allocates it on the CPU (buffers: caller)."""
    with torch.device("meta"):
        m = cls(*args, **kw)
    return m.to_empty(device="cpu")


def build_model(path):
    """A full-size random SD v1.4 in diffusers layout at `path` (made in a sibling folder and
    renamed, so an interrupted build leaves no half model behind). One component in memory at a time."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
             "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
             "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    (tmp / "tokenizer").mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(TOKENIZER_DIR / name, tmp / "tokenizer" / name)
    (tmp / "tokenizer" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD14_SCHEDULER, indent=2))

    cfg = CLIPTextConfig(**SD14_TEXT)
    te = on_meta(CLIPTextModel, cfg)
    for name, buf in te.named_buffers():  # position_ids is the text tower's only buffer
        if name.endswith("position_ids"):
            buf.copy_(torch.arange(cfg.max_position_embeddings).expand(1, -1))
    init_random(te, 1).save_pretrained(str(tmp / "text_encoder"), safe_serialization=True)
    del te
    init_random(on_meta(UNet2DConditionModel, **SD14_UNET), 2).save_pretrained(str(tmp / "unet"), safe_serialization=True)
    init_random(on_meta(AutoencoderKL, **SD14_VAE), 3).save_pretrained(str(tmp / "vae"), safe_serialization=True)
    tmp.rename(path)
    print(f"built a full-size random SD v1.4 at {path} in {time.perf_counter() - t0:.0f} s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--sizes", default="512x384")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--scheduler", default="pndm", choices=list(SCHEDULERS))
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--batch", default="1")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--flush-denormal", action="store_true")
    a = ap.parse_args()
    if not Path(a.model).exists():
        build_model(a.model)
    if a.build_only:
        return

    import diffusers
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0

    dev = torch.device(a.device)
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    dtype = torch.float16 if a.dtype == "fp16" else torch.float32
    pipe = StableDiffusionPipeline.from_pretrained(a.model, torch_dtype=dtype, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.scheduler = getattr(diffusers, SCHEDULERS[a.scheduler]).from_config(pipe.scheduler.config)
    pipe = pipe.to(dev)
    pipe.unet.set_attn_processor(AttnProcessor2_0())  # SDPA, as ours
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    pipe.set_progress_bar_config(disable=True)
    print(f"diffusers {diffusers.__version__} StableDiffusionPipeline: {a.scheduler} {a.steps} steps, guidance "
          f"{a.guidance:.1f}, {a.device} {a.dtype}, {torch.get_num_threads()} threads, 1 warm-up + {a.reps} timed"
          f"{', denormals flushed' if a.flush_denormal else ''}",
          flush=True)
    print(f"{'size':>10} {'batch':>6} {'images/s':>12} {'s/image':>12}", flush=True)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        for b in (int(v) for v in a.batch.split(",")):
            with torch.no_grad():
                cond, uncond = pipe.encode_prompt([PROMPT] * b, dev, 1, True, negative_prompt=[""] * b)
            g = torch.Generator().manual_seed(0)
            latents = torch.randn(b, pipe.unet.config.in_channels, h // pipe.vae_scale_factor, w // pipe.vae_scale_factor,
                                  generator=g).to(dev, dtype)

            def call():
                return pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=latents, height=h, width=w,
                            num_inference_steps=a.steps, guidance_scale=a.guidance, output_type="pt").images

            call()  # warm-up
            sync()
            t0 = time.perf_counter()
            for _ in range(a.reps):
                out = call()
            sync()
            s = (time.perf_counter() - t0) / a.reps
            assert out.shape == (b, 3, h, w), out.shape
            print(f"{size:>10} {b:>6} {b / s:12.4f} {s / b:12.3f}", flush=True)
            print(f"images/s {b / s:.6f}", flush=True)


if __name__ == "__main__":
    if int(torch.__version__.split(".")[0]) < 2:
        sys.exit(f"peer_sampler.py needs torch >= 2, {sys.executable} has {torch.__version__}: "
                 "run it with the project venv's python (.venv/bin/python3)")
    main()
