"""stream-export end to end against torchvision: a checkpoint with random weights and non-trivial
batch-norm statistics (reference_probe checkpoint, as stream-train writes them), exported by
`stream-export --dump-logits`, loaded into torchvision's model with a strict load_state_dict, and the
eval-mode float32 logits on the dumped input compared: max |difference| <= 1e-3 (tools/check_export.py's
bound; the same kernels on both sides give ~1e-5) and the same top-1 everywhere. tools/check_export.py
is run on the same files too (it is what a user runs)."""
import sys

import pytest
import torch
import torchvision

import refsupport as R

FAMILY = "export"


@pytest.mark.parametrize("arch,classes", [("resnet50", 1000), ("resnet18", 10)])
def test_export_loads_into_torchvision(arch, classes, tmp_path):
    ckpt = R.run_ok(["reference_probe", "checkpoint", "--arch", arch, "--width", "1", "--classes", classes,
                     "--out", tmp_path / "checkpoints"]).stdout.strip()
    model_file, ref_file = tmp_path / "model.safetensors", tmp_path / "ref.safetensors"
    R.run_ok(["stream-export", "--checkpoint", ckpt, "--out", model_file, "--dump-logits", ref_file, "--images", 4,
              "--size", 224])

    model = getattr(torchvision.models, arch)(num_classes=classes)
    state = R.load_tensors(model_file)
    model.load_state_dict(state, strict=True)
    assert set(state) == set(model.state_dict())
    model.eval()
    ref = R.load_tensors(ref_file)
    logits = model(ref["input"])
    diff = R.record(FAMILY, f"{arch} max |logit diff|", (logits - ref["logits"]).abs().max().item(), 1e-3)
    # The logits must be worth comparing: spread out, not all one class.
    assert ref["logits"].std() > 0.1
    assert diff <= 1e-3, f"{arch}: logits differ by up to {diff:.3g}"
    assert torch.equal(logits.argmax(1), ref["logits"].argmax(1))

    r = R.run([sys.executable, R.REPO / "tools" / "check_export.py", model_file, ref_file])
    assert r.returncode == 0, r.stdout + r.stderr
