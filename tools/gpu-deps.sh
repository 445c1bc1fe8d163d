#!/usr/bin/env bash
# Run here (Debian, with the registries) before a GPU session: gathers into .deps/ (ignored by git;
# carry it with the device call) what the offline GPU machine (Ubuntu 24.04, Python torch 2.11 +
# CUDA 13, no network, no Debian packages of ours) lacks:
#   .deps/usr/include   TOML++, doctest and Gloo headers (header-only use; Gloo: declarations only)
#   .deps/wheels        the pinned test oracles' wheels (diffusers, transformers, safetensors and their
#                       pure dependencies) for the GPU machine's Python, installed there with --no-index
#   .deps/fashion-mnist 10,000 training and 2,000 test images (IDX, gzip) for the GPU training tests
# About 25 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${GPU_PYTHON_VERSION:-3.12}
mkdir -p .deps/debs .deps/wheels .deps/fashion-mnist
(cd .deps/debs && apt-get download libtomlplusplus-dev doctest-dev libgloo-dev >/dev/null)
for deb in .deps/debs/*.deb; do dpkg -x "$deb" .deps; done
rm -rf .deps/debs .deps/usr/share  # only the headers travel
for h in toml++/toml.h doctest/doctest.h gloo/algorithm.h; do test -f ".deps/usr/include/$h"; done

# The oracles and their dependencies, pinned as in tools/requirements.txt; not torch and its CUDA
# libraries, which the GPU machine's Python already has.
pins=$(.venv/bin/python3 - <<'PY'
import importlib.metadata as md, re
from packaging.requirements import Requirement
skip = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*|sympy|mpmath|networkx|jinja2|markupsafe|setuptools|numpy)$")
todo, seen = ["diffusers", "transformers", "safetensors", "torchvision", "pillow", "pytest"], {}
while todo:
    name = todo.pop().lower().replace("_", "-")
    if name in seen or skip.match(name):
        continue
    dist = md.distribution(name)
    seen[name] = f"{dist.metadata['Name']}=={dist.version}"
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": "", "python_version": "3.12"}):
            todo.append(req.name)
print(" ".join(sorted(seen.values())))
PY
)
# shellcheck disable=SC2086
.venv/bin/python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .deps/wheels $pins

.venv/bin/python3 - <<'PY'
import gzip, pathlib, struct
src, dst = pathlib.Path("/usr/share/datasets/fashion-mnist"), pathlib.Path(".deps/fashion-mnist")
for split, n in (("train", 10000), ("t10k", 2000)):
    for kind, item in (("images-idx3", 28 * 28), ("labels-idx1", 1)):
        raw = gzip.open(src / f"{split}-{kind}-ubyte.gz").read()
        dims = raw[3]
        head = bytearray(raw[: 4 + 4 * dims])
        struct.pack_into(">I", head, 4, n)
        body = raw[4 + 4 * dims : 4 + 4 * dims + n * item]
        with gzip.open(dst / f"{split}-{kind}-ubyte.gz", "wb") as f:
            f.write(bytes(head) + body)
PY
du -sh .deps | cut -f1 | xargs echo ".deps/ ready:"
