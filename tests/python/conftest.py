"""The Python package's tests: synthstream as built in $SYNTH_BUILD_DIR/python (default build/)."""
import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("SYNTH_BUILD_DIR", REPO / "build")).resolve()
sys.path.insert(0, str(BUILD / "python"))
FMNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    # Configs name their files relative to the repository (models/fmnist-sd, configs/classes/...).
    monkeypatch.chdir(REPO)


def need_fmnist():
    if not (FMNIST / "train-images-idx3-ubyte.gz").exists() and not (FMNIST / "train-images-idx3-ubyte").exists():
        pytest.skip(f"Fashion-MNIST is not at {FMNIST} (Debian: dataset-fashion-mnist)")
