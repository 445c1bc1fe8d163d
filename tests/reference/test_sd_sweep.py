"""Random SD-v1-family configurations against diffusers / transformers, and configurations we do not
support.

test_random_config: 24 small configurations drawn from one seed (each test prints its draw; run with
-s or see a failure's captured output) covering U-Net levels 2-4, layers per block 1-2, attention_head_dim as
an int and as a per-block list, linear and convolutional transformer projections, one or two
transformer layers, cross-attention widths 16-96, sinusoidal-embedding variants, odd latent sizes
(config 0 is 5 x 7), VAE depths 1-4 with their scaling factors and with/without the mid-block
attention, and CLIP text towers of several widths, head counts, depths and activations. Each is
saved in the diffusers layout and checked on one U-Net call (two timesteps, one fractional), the
VAE decode and the text encoder: relative L2 <= 1e-4 in float32.

test_deviation: single keys changed from a small base configuration, each built by diffusers with
that key. Either our loader refuses the directory with exit 2 and one line naming the key, or the
numbers match; silently different numbers fail. test_unsupported_config_refused_by_stream_sample
checks the same through the user-facing binary.
"""
import json
import math
import random

import pytest
import torch

import refsupport as R

FAMILY = "sd-sweep"
SWEEP_SEED = 20240611
N_CONFIGS = 24
PROMPTS = ["a photo of a goldfinch, Carduelis carduelis", "a photo of multiple different tench, Tinca tinca inside "
           "a boathouse"]


def _divisors(n, upto=16):
    return [d for d in range(1, upto + 1) if n % d == 0]


def draw_config(rng, i):
    """One SD-v1-family configuration (U-Net, VAE, CLIP text) and the check's input sizes."""
    levels = (2, 3, 4)[i % 3]
    groups = rng.choice([8, 16, 32])
    mults = sorted(rng.choice([1, 2, 3, 4]) for _ in range(levels))
    channels = [groups * m for m in mults]
    cross = [rng.random() < 0.7 for _ in range(levels)]
    if rng.random() < 0.5:
        cross[-1] = False  # SD v1: the deepest level has no attention
    if not any(cross):
        cross[0] = True
    down = ["CrossAttnDownBlock2D" if c else "DownBlock2D" for c in cross]
    up = ["CrossAttnUpBlock2D" if c else "UpBlock2D" for c in reversed(cross)]
    if i % 2 == 0:  # SD v1 style: one head count for every level
        heads = rng.choice(_divisors(math.gcd(*channels), 8))
    else:
        heads = [rng.choice(_divisors(c, 12)) for c in channels]
    width = rng.choice([16, 24, 32, 48, 64, 96])
    unet = dict(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=tuple(channels),
        down_block_types=tuple(down), up_block_types=tuple(up), layers_per_block=rng.choice([1, 2]),
        attention_head_dim=heads, cross_attention_dim=width, norm_num_groups=groups,
        norm_eps=rng.choice([1e-5, 1e-6]), use_linear_projection=rng.random() < 0.5,
        transformer_layers_per_block=rng.choice([1, 1, 1, 2]),
        flip_sin_to_cos=rng.random() < 0.8, freq_shift=rng.choice([0, 0, 1]))
    vae_levels = rng.choice([1, 2, 3, 4])
    vae_groups = rng.choice([8, 16, 32])
    vae = dict(
        in_channels=3, out_channels=3, latent_channels=4,
        block_out_channels=tuple(vae_groups * m for m in sorted(rng.choice([1, 2, 3]) for _ in range(vae_levels))),
        down_block_types=("DownEncoderBlock2D",) * vae_levels, up_block_types=("UpDecoderBlock2D",) * vae_levels,
        layers_per_block=rng.choice([1, 2]), norm_num_groups=vae_groups, sample_size=32,
        scaling_factor=rng.choice([0.18215, 0.13025, 1.0, 0.5]), mid_block_add_attention=rng.random() < 0.75)
    text = dict(
        vocab_size=49408, hidden_size=width, intermediate_size=rng.randint(8, 4 * width + 7),
        num_hidden_layers=rng.choice([1, 2, 3]), num_attention_heads=rng.choice(_divisors(width, 8)),
        max_position_embeddings=rng.choice([77, 77, 80]),
        hidden_act=rng.choice(["quick_gelu", "gelu", "gelu_new", "relu"]), layer_norm_eps=rng.choice([1e-5, 1e-6]),
        projection_dim=width, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    latent = (5, 7) if i == 0 else (rng.randint(3, 10), rng.randint(3, 10))
    vae_latent = (7, 5) if i == 0 else (rng.randint(2, 9), rng.randint(2, 9))
    timesteps = [float(rng.randint(0, 999)), rng.randint(0, 998) + rng.choice([0.0, 0.25, 0.5])]
    return {"unet": unet, "vae": vae, "text": text, "latent": latent, "vae_latent": vae_latent, "timesteps": timesteps}


def _configs():
    rng = random.Random(SWEEP_SEED)
    return [draw_config(rng, i) for i in range(N_CONFIGS)]


CONFIGS = _configs()


def build(cfg, seed, *, text=True, unet=True, vae=True):
    """The random components of a configuration (text encoder, U-Net, VAE), as asked for."""
    modules = {}
    if text:
        modules["text_encoder"] = R.make_text_encoder(cfg["text"], seed)
    if unet:
        modules["unet"] = R.make_unet(cfg["unet"], seed + 1)
    if vae:
        modules["vae"] = R.make_vae(cfg["vae"], seed + 2)
    return modules


def references(cfg, modules, seed, tokenizer):
    """The probe's inputs and the oracles' outputs for the given components. The U-Net's context
    is the text encoder's output (a random one of the same shape without a text encoder)."""
    g = torch.Generator().manual_seed(seed)
    inputs, refs = {}, {}
    ids = R.tokenize(tokenizer, PROMPTS)
    if "text_encoder" in modules:
        ctx = modules["text_encoder"](ids).last_hidden_state
        inputs["text.input_ids"] = ids
        refs["text.last_hidden_state"] = ctx
    else:
        ctx = torch.randn(2, 77, cfg["text"]["hidden_size"], generator=g)
    if "unet" in modules:
        inputs["unet.sample"] = torch.randn(2, 4, *cfg["latent"], generator=g)
        inputs["unet.timestep"] = torch.tensor(cfg["timesteps"], dtype=torch.float32)
        inputs["unet.encoder_hidden_states"] = ctx.clone()
        refs["unet.out"] = modules["unet"](inputs["unet.sample"], inputs["unet.timestep"], ctx).sample
    if "vae" in modules:
        m = modules["vae"]
        inputs["vae.latent"] = torch.randn(2, 4, *cfg["vae_latent"], generator=g)
        refs["vae.decoded"] = m.decode(inputs["vae.latent"] / m.config.scaling_factor).sample
    return inputs, refs


@pytest.mark.parametrize("index", range(N_CONFIGS), ids=[f"cfg{i:02d}" for i in range(N_CONFIGS)])
def test_random_config(index, tmp_path, hf_tokenizer):
    cfg = CONFIGS[index]
    print(json.dumps(cfg))
    modules = build(cfg, 1000 + index)
    inputs, refs = references(cfg, modules, 1000 + index, hf_tokenizer)
    R.save_sd_dir(tmp_path / "model", **modules)
    r, out = R.probe_models(tmp_path / "model", inputs, tmp_path)
    assert r.returncode == 0, f"config {index} refused: {r.stderr}"
    failures = []
    for key, ref in refs.items():
        assert out[key].shape == ref.shape, key
        err = R.record(FAMILY, f"{key} rel L2", R.rel_l2(out[key], ref), 1e-4)
        if not err <= 1e-4:
            failures.append(f"{key}: relative L2 {err:.3g}")
    assert not failures, f"config {index}: {failures}"


def test_sweep_covers_the_issue():
    """The draw covers what the issue lists (so a change of seed cannot silently narrow it)."""
    u = [c["unet"] for c in CONFIGS]
    assert len(CONFIGS) >= 20
    assert {len(c["block_out_channels"]) for c in u} == {2, 3, 4}
    assert {c["layers_per_block"] for c in u} == {1, 2}
    assert any(isinstance(c["attention_head_dim"], int) for c in u)
    assert any(isinstance(c["attention_head_dim"], list) for c in u)
    assert {c["use_linear_projection"] for c in u} == {False, True}
    assert {c["transformer_layers_per_block"] for c in u} == {1, 2}
    assert {c["flip_sin_to_cos"] for c in u} == {False, True} and {c["freq_shift"] for c in u} == {0, 1}
    assert any(c["timesteps"][1] % 1 for c in CONFIGS)
    assert len({c["cross_attention_dim"] for c in u}) >= 4
    assert (5, 7) in [c["latent"] for c in CONFIGS]
    assert any(h % 2 and w % 2 for h, w in (c["latent"] for c in CONFIGS[1:]))
    assert {len(c["vae"]["block_out_channels"]) for c in CONFIGS} == {1, 2, 3, 4}
    assert len({c["vae"]["scaling_factor"] for c in CONFIGS}) >= 3
    assert {c["vae"]["mid_block_add_attention"] for c in CONFIGS} == {False, True}
    assert len({(c["text"]["hidden_size"], c["text"]["num_attention_heads"]) for c in CONFIGS}) >= 8
    assert {c["text"]["hidden_act"] for c in CONFIGS} == {"quick_gelu", "gelu", "gelu_new", "relu"}


# --- configurations outside what we support ----------------------------------------------------

BASE = {
    "unet": dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 layers_per_block=1, attention_head_dim=4, cross_attention_dim=32, norm_num_groups=16),
    "vae": dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                layers_per_block=1, norm_num_groups=8, sample_size=32),
    "text": dict(vocab_size=49408, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32),
    "latent": (6, 5), "vae_latent": (5, 6), "timesteps": [981.0, 3.0],
}

# (component, key, value): diffusers/transformers build the model with it; we must refuse it by
# name or give the same numbers.
DEVIATIONS = [
    ("unet", "resnet_time_scale_shift", "scale_shift"),
    ("unet", "upcast_attention", True),
    ("unet", "only_cross_attention", True),
    ("unet", "class_embed_type", "timestep"),
    ("unet", "act_fn", "mish"),
    ("unet", "mid_block_type", "UNetMidBlock2DSimpleCrossAttn"),
    ("unet", "time_embedding_type", "fourier"),
    ("unet", "resnet_out_scale_factor", 2.0),
    ("unet", "time_embedding_act_fn", "silu"),
    ("unet", "timestep_post_act", "silu"),
    ("unet", "time_embedding_dim", 96),
    ("unet", "cross_attention_norm", "layer_norm"),
    ("unet", "encoder_hid_dim", 48),
    ("unet", "mid_block_scale_factor", 2.0),
    ("unet", "downsample_padding", 0),
    ("unet", "conv_in_kernel", 5),
    ("unet", "conv_out_kernel", 1),
    ("unet", "center_input_sample", True),
    ("unet", "resnet_skip_time_act", True),
    ("unet", "num_class_embeds", 10),
    ("unet", "addition_embed_type", "text"),
    ("unet", "time_cond_proj_dim", 16),
    ("unet", "transformer_layers_per_block", [2, 1]),
    ("vae", "act_fn", "gelu"),
    ("vae", "use_post_quant_conv", False),
    ("vae", "mid_block_add_attention", False),
    ("vae", "shift_factor", 0.0609),
    ("text", "hidden_act", "gelu_pytorch_tanh"),
    ("text", "hidden_act", "silu"),
]


# Where src/diffusion does not yet do what this test asks (found by this suite; see the report of
# the issue that added it). strict: once fixed, the XPASS fails the run until the entry is removed.
# Deviations we knowingly differ on (strict xfail: fixing one turns its xfail into a failure, so
# the entry must go). Empty since the U-Net and VAE config readers refuse every non-SD-v1 key.
KNOWN_GAPS = {}


def _deviation_id(d):
    return f"{d[0]}-{d[1]}={d[2]}"


def _deviation_params():
    return [pytest.param(d, id=_deviation_id(d),
                         marks=[pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[d[1]])] if d[1] in KNOWN_GAPS else [])
            for d in DEVIATIONS]


@pytest.mark.parametrize("deviation", _deviation_params())
def test_deviation(deviation, tmp_path, hf_tokenizer):
    component, key, value = deviation
    cfg = json.loads(json.dumps(BASE))
    cfg[component][key] = value
    try:
        modules = build(cfg, 77, text=component == "text", unet=component == "unet", vae=component == "vae")
    except Exception as e:  # noqa: BLE001 - the oracle cannot build it: there is nothing to compare with
        pytest.skip(f"diffusers/transformers cannot build {key}={value!r}: {e}")
    try:
        inputs, refs = references(cfg, modules, 77, hf_tokenizer)
    except Exception as e:  # noqa: BLE001 - built, but its forward needs what an SD v1 pipeline does not
        # give (class labels, a wider context): there are no numbers to compare, so only a refusal is right.
        print(f"the oracle cannot run {key}={value!r} on SD v1 inputs ({e}); expecting a refusal")
        g = torch.Generator().manual_seed(77)
        inputs = {"unet.sample": torch.randn(2, 4, *cfg["latent"], generator=g),
                  "unet.timestep": torch.tensor(cfg["timesteps"]),
                  "unet.encoder_hidden_states": torch.randn(2, 77, cfg["text"]["hidden_size"], generator=g)}
        refs = None
    R.save_sd_dir(tmp_path / "model", **modules)
    r, out = R.probe_models(tmp_path / "model", inputs, tmp_path)
    if r.returncode != 0:
        line = R.one_line_error(r, "reference_probe")
        print(f"refused: {line}")
        assert key in line, f"{key}={value!r} refused without naming the key: {line}"
        return
    assert refs is not None, f"{key}={value!r} accepted although diffusers cannot run it on SD v1 inputs"
    for name, ref in refs.items():
        err = R.record(FAMILY, f"deviation {key} rel L2", R.rel_l2(out[name], ref), 1e-4, key in KNOWN_GAPS)
        print(f"accepted: {name} relative L2 {err:.3g}")
        assert err <= 1e-4, f"{key}={value!r} accepted but {name} differs: relative L2 {err:.3g}"


def test_unsupported_config_refused_by_stream_sample(tmp_path, hf_tokenizer):
    """A deliberately unsupported U-Net (FiLM-style scale/shift time conditioning, as in SD-upscaler
    models) is refused by stream-sample itself: exit 2, one line, naming the key."""
    cfg = json.loads(json.dumps(BASE))
    cfg["unet"]["resnet_time_scale_shift"] = "scale_shift"
    modules = build(cfg, 5)
    R.save_sd_dir(tmp_path / "model", **modules)
    r = R.run(["stream-sample", "--model", tmp_path / "model", "--prompt", "a photo of a tench", "--steps", "1",
               "--width", "16", "--height", "16", "--out", tmp_path / "out"])
    line = R.one_line_error(r, "stream-sample")
    assert "resnet_time_scale_shift" in line and "scale_shift" in line, line
    assert not (tmp_path / "out" / "0.png").exists()
