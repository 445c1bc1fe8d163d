"""synthstream from Python against the C++ side (tests/python; ctest test_python).

- Python and C++ yield the same images and labels: the stream's images equal `stream-sample
  --config CFG --index I`, which test_generator.cpp shows equal to stream-train's, bit for bit.
- Exactly once across save, SIGKILL and resume, by the ledger and by the indices a script kept.
- Two ranks partition every global batch of the one-rank stream; torchrun DDP covers every index once.
- Bad input is a synthstream.InputError (ValueError) carrying the CLI's message.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import synthstream
from conftest import BUILD, REPO, need_fmnist

SMOKE = "configs/smoke.toml"
FMNIST_CFG = "configs/fmnist.toml"
ENV = dict(os.environ, PYTHONPATH=str(BUILD / "python"))


def small(total, batch):
    return [f"train.total_images={total}", f"train.batch_size={batch}"]


def test_synthetic_batches_equal_stream_sample(tmp_path):
    # Images 8..23 of the smoke stream in batches of 8: generator.batch_size = 8 aligns the
    # generator's batches, so image i is made in the same batch by both (stream-sample's rule).
    sets = small(24, 8) + ["generator.batch_size=8"]
    stream = synthstream.Stream(SMOKE, overrides=sets)
    prompts = synthstream.Prompts(SMOKE)
    batches = list(stream)
    assert [b[2].tolist() for b in batches] == [list(range(i, i + 8)) for i in (0, 8, 16)]
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert images.dtype == torch.uint8 and images.shape == (24, 3, 32, 32)
    assert labels.tolist() == [prompts.class_of(i) for i in range(24)]
    out = tmp_path / "samples"
    cmd = [str(BUILD / "bin" / "stream-sample"), "--config", SMOKE, "--index", "8", "--count", "16", "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for i in range(8, 24):
        ref = torch.from_numpy(np.array(Image.open(out / f"{i}.png").convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(images[i], ref), f"image {i} differs from stream-sample's"


def test_real_batches_are_the_trainer_stream():
    need_fmnist()
    stream = synthstream.Stream(FMNIST_CFG, overrides=small(256, 64))
    seen = [b for b in stream]
    assert len(seen) == 4 and stream.position == 256
    assert torch.cat([b[2] for b in seen]).tolist() == list(range(256))
    assert seen[0][0].shape == (64, 3, 28, 28)
    assert stream.ledger() == {"count": 256, "duplicates": 0, "gaps": 0, "exactly_once": True}
    # A second pass over a finished stream yields nothing more: every index once.
    assert list(stream) == []


def test_exactly_once_across_kill_and_resume(tmp_path):
    need_fmnist()
    state = tmp_path / "state.pt"
    base = [sys.executable, str(REPO / "tests/python/resume_worker.py"), FMNIST_CFG, "--state", str(state)]
    for s in small(1280, 64):
        base += ["--set", s]
    killed = subprocess.run(base + ["--die-after", "9"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    saved = torch.load(state)
    assert saved["stream"]["position"] == 8 * 64 and len(saved["committed"]) == 8 * 64
    done = subprocess.run(base, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = torch.load(state)
    assert sorted(final["committed"]) == list(range(1280)) and len(final["committed"]) == 1280
    report = synthstream.ledger_report(final["stream"]["ledger"], 1280)
    assert report == {"count": 1280, "duplicates": 0, "gaps": 0, "exactly_once": True}


def test_load_state_dict_reuses_the_models_it_opened(tmp_path):
    # The models are read once, by Stream(): a copy that is gone afterwards cannot be read again by
    # load_state_dict, which must still continue the stream exactly once.
    model = tmp_path / "fmnist-sd"
    shutil.copytree(REPO / "models/fmnist-sd", model)
    stream = synthstream.Stream(SMOKE, overrides=small(256, 64) + [f'generator.model_dir="{model}"'])
    first = next(iter(stream))[2]
    state = stream.state_dict()
    shutil.rmtree(model)
    stream.load_state_dict(state)
    rest = [indices for _, _, indices in stream]
    assert torch.cat([first] + rest).tolist() == list(range(256))
    report = stream.ledger()
    assert (report["duplicates"], report["gaps"]) == (0, 0)


def test_an_abandoned_iterator_does_not_move_a_restored_stream(tmp_path):
    # A script keeps an iterator, restores an earlier state and drops the iterator afterwards: its
    # clean-up must not put the stream back where that iterator stood (indices 64..127 lost).
    stream = synthstream.Stream(SMOKE, overrides=small(256, 64))
    start = stream.state_dict()
    old = iter(stream)
    next(old), next(old)
    stream.load_state_dict(start)
    del old
    assert stream.position == 0
    seen = torch.cat([indices for _, _, indices in stream]).tolist()
    assert seen == list(range(256))
    assert stream.ledger()["exactly_once"]


def test_two_ranks_split_each_global_batch():
    need_fmnist()
    one = [b[2].tolist() for b in synthstream.Stream(FMNIST_CFG, rank=0, world_size=1, overrides=small(640, 128))]
    parts = [[b[2].tolist() for b in synthstream.Stream(FMNIST_CFG, rank=r, world_size=2, overrides=small(640, 128))]
             for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(one) == 5
    for step, batch in enumerate(one):
        assert parts[0][step] + parts[1][step] == batch
        assert len(parts[0][step]) == len(parts[1][step]) == 64


def test_ddp_example_covers_every_index_once(tmp_path):
    need_fmnist()
    # --standalone: a local rendezvous on a free port (a fixed port could be taken, port 0 hangs).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "examples/train_resnet18.py"), FMNIST_CFG, "--set", "train.total_images=512",
           "--set", "train.batch_size=64", "--indices-out", str(tmp_path / "indices"), "--no-eval"]
    r = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    got = [int(x) for rank in (0, 1) for x in (tmp_path / f"indices.{rank}").read_text().split()]
    assert sorted(got) == list(range(512))


def test_dino_crops_equal_stream_augment(tmp_path):
    """dino_crops of a streamed batch equals stream-augment's crops of the same image and index."""
    need_fmnist()
    from safetensors.torch import load_file
    sets = small(8, 8) + ["augment.kind=\"dino\"", "augment.dino.global_crops=2", "augment.dino.global_size=24",
                          "augment.dino.local_crops=3", "augment.dino.local_size=12"]
    cfg = synthstream.load_config(FMNIST_CFG, sets)
    images, _, indices = next(iter(synthstream.Stream(cfg)))
    g, l = synthstream.dino_crops(images, indices, cfg)
    assert g.dtype == torch.float32 and g.shape == (8 * 2, 3, 24, 24) and l.shape == (8 * 3, 3, 12, 12)
    for i in (0, 5):
        png = tmp_path / f"{i}.png"
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(png)
        cmd = [str(BUILD / "bin" / "stream-augment"), "--config", FMNIST_CFG, "--index", str(int(indices[i])),
               "--out", str(tmp_path / f"crops{i}"), str(png)]
        for s in sets:
            cmd += ["--set", s]
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        ref = load_file(tmp_path / f"crops{i}" / "crops.safetensors")
        assert torch.equal(g[2 * i:2 * i + 2], ref["global"]), f"global crops of image {i}"
        assert torch.equal(l[3 * i:3 * i + 3], ref["local"]), f"local crops of image {i}"
    with pytest.raises(synthstream.InputError, match="augment.kind"):
        synthstream.dino_crops(images, indices, synthstream.load_config(FMNIST_CFG))


def test_bad_input_is_an_exception_naming_the_key(tmp_path):
    with pytest.raises(synthstream.InputError, match="unknown key train.batchsize"):
        synthstream.Stream(FMNIST_CFG, overrides=["train.batchsize=3"])
    with pytest.raises(ValueError, match="does-not-exist.toml"):
        synthstream.Stream(tmp_path / "does-not-exist.toml")
    broken = tmp_path / "model"
    broken.mkdir()
    with pytest.raises(synthstream.InputError, match=str(broken)):
        synthstream.Stream(SMOKE, overrides=[f"generator.model_dir=\"{broken}\""])
    stream = synthstream.Stream(FMNIST_CFG, overrides=small(256, 64))
    with pytest.raises(synthstream.InputError, match="batch_size"):
        stream.load_state_dict({"position": 0, "ledger": "low=0;dup=0;sparse=", "rank": 0, "world_size": 1,
                                "batch_size": 32, "total_images": 256})
