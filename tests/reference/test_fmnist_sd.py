"""models/fmnist-sd, the trained toy text-to-image model (MODEL_CARD.md there), in diffusers.

The committed directory loads as it is in `diffusers.StableDiffusionPipeline.from_pretrained`, so a
user can take it to the tools they know. For each scheduler the pipeline and `stream-sample` run
the same prompts from the same initial latents (float32, CPU): final latents and the 8-bit images
agree within relative L2 1e-3 (images: no pixel more than 1 level off, rounding of values within
float error of a .5 boundary).
"""
import numpy as np
import pytest
import torch
from PIL import Image

import refsupport as R

FAMILY = "fmnist-sd"
MODEL = R.REPO / "models" / "fmnist-sd"
PROMPTS = ["sneaker, shoe", "ankle boot, boot, footwear inside a bamboo forest",
           "a photo of multiple trouser, pants, garment"]
SIZE, STEPS, GUIDANCE = 32, 10, 4.0
SCHEDULERS = {"pndm": "PNDMScheduler", "ddim": "DDIMScheduler", "dpmpp2m": "DPMSolverMultistepScheduler",
              "euler": "EulerDiscreteScheduler"}


@pytest.fixture(scope="module")
def pipeline():
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(str(MODEL), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    # Each scheduler is made from the config as loaded (diffusers' from_config: keys the file left
    # out take the new class's defaults), never from another test's scheduler.
    return pipe, pipe.scheduler.config


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_stream_sample_matches_pipeline(pipeline, scheduler, tmp_path):
    import diffusers
    pipeline, base = pipeline
    pipeline.scheduler = getattr(diffusers, SCHEDULERS[scheduler]).from_config(base)
    init = torch.randn(len(PROMPTS), 4, SIZE // 4, SIZE // 4, generator=torch.Generator().manual_seed(16))
    latents = pipeline(prompt=PROMPTS, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                       latents=init.clone(), output_type="latent").images
    decoded = pipeline.vae.decode(latents / pipeline.vae.config.scaling_factor).sample
    want = torch.round((decoded / 2 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)

    R.save_tensors(tmp_path / "init.safetensors", {"latents": init})
    args = ["stream-sample", "--model", MODEL, "--scheduler", scheduler, "--steps", STEPS, "--guidance", GUIDANCE,
            "--init-latents", tmp_path / "init.safetensors", "--out-latents", tmp_path / "final.safetensors",
            "--out", tmp_path / "out"]
    for p in PROMPTS:
        args += ["--prompt", p]
    R.run_ok(args)
    ours = R.load_tensors(tmp_path / "final.safetensors")["latents"]
    err = R.record(FAMILY, f"{scheduler} final latents rel L2", R.rel_l2(ours, latents), 1e-3)
    assert err <= 1e-3, f"{scheduler}: final latents relative L2 {err:.3g} > 1e-3"
    image = torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / "out" / f"{i}.png").convert("RGB")))
                         for i in range(len(PROMPTS))])
    assert image.shape == want.shape == (len(PROMPTS), SIZE, SIZE, 3)
    # A trained model: the images are items on a dark background, neither blank nor saturated.
    assert 0.05 < (want.float() / 255).mean() < 0.6
    err = R.record(FAMILY, f"{scheduler} 8-bit image rel L2", R.rel_l2(image.float(), want.float()), 1e-3)
    worst = (image.int() - want.int()).abs().max().item()
    R.record(FAMILY, f"{scheduler} 8-bit image max |diff| (levels)", worst, 1)
    assert err <= 1e-3 and worst <= 1, f"{scheduler}: image relative L2 {err:.3g}, max difference {worst} levels"


def test_encoder_matches_diffusers(tmp_path):
    """The autoencoder's encoder half, which only stream-sd-train uses: AutoencoderKL.encode's
    posterior (mean, log-variance) on real Fashion-MNIST-like inputs, relative L2 <= 1e-4."""
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(str(MODEL / "vae"), torch_dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    image = (torch.rand(3, 1, SIZE, SIZE, generator=g) * 2 - 1).clamp(-1, 1).expand(-1, 3, -1, -1).contiguous()
    dist = vae.encode(image).latent_dist
    r, out = R.probe_models(MODEL, {"vae.image": image}, tmp_path)
    assert r.returncode == 0, r.stderr
    for key, ref in (("vae.posterior_mean", dist.mean), ("vae.posterior_logvar", dist.logvar)):
        err = R.record(FAMILY, f"{key} rel L2", R.rel_l2(out[key], ref), 1e-4)
        assert err <= 1e-4, f"{key}: relative L2 {err:.3g} > 1e-4"
