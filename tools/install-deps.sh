#!/usr/bin/env bash
# Installs what synthstream needs on Debian 12, idempotently:
#  - Debian packages: compilers, build tools, libraries, Gloo's headers (see below), datasets;
#  - the project venv .venv/ (ignored) with the pinned torch wheel, whose LibTorch (2.11, built for
#    CUDA 13.0) is the one every build links, and the test oracles (tools/requirements.txt).
# First run on a fresh machine: ~5 min and ~5.5 GB of disk (4.8 GB of it the venv, mostly CUDA
# libraries inside the torch wheel's dependencies); later runs only check.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
# libgloo-dev: headers only. The torch wheel has Gloo compiled in but ships no Gloo headers, which
# c10d's ProcessGroupGloo.hpp includes; that class holds Gloo objects only through pointers, so
# declarations from Debian's Gloo are enough (docs/ARCHITECTURE.md, "One LibTorch").
# clang-14 + libclang-rt-14-dev (libFuzzer, ASan, UBSan) and llvm-14 (llvm-symbolizer): tools/fuzz.sh.
# iproute2: the network-namespace "hosts" of tests/distributed/test_hosts.py.
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake ninja-build ccache pkg-config python3 python3-venv python3-dev \
  libgloo-dev libtomlplusplus-dev libboost-dev libspdlog-dev libfmt-dev doctest-dev \
  nlohmann-json3-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev \
  dataset-fashion-mnist wordnet-base \
  clang-14 libclang-rt-14-dev llvm-14 iproute2

VENV=${SYNTH_VENV:-.venv}
if [ ! -x "$VENV/bin/python3" ]; then python3 -m venv "$VENV"; fi
if ! cmp -s tools/requirements.txt "$VENV/.synth-requirements"; then
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check --no-input -r tools/requirements.txt
  cp tools/requirements.txt "$VENV/.synth-requirements"
fi
"$VENV/bin/python3" -c 'import torch; print("LibTorch", torch.__version__, "(CUDA", torch.version.cuda, ") at", torch.utils.cmake_prefix_path)'
