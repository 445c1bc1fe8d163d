#!/usr/bin/env bash
# The GPU checks in as few device calls as possible. The GPU machine has Python torch 2.11 + CUDA 13,
# NCCL and cuDNN, but no network and none of our Debian packages: run tools/gpu-deps.sh here first
# and carry .deps/ with the call. Each step fits one device call (at most 10 minutes); logs and
# figures go to $OUT (the device tool's folder), or gpu-out/.
#
#   tools/gpu-session.sh setup   a venv over the machine's Python (its torch) + the carried oracle wheels
#   tools/gpu-session.sh build   configure + build into build-gpu/ for this GPU's architecture only
#   tools/gpu-session.sh test    ctest -L gpu (DINO kernels vs the CPU reference, AMP, NCCL one rank,
#                                GPU training learns Fashion-MNIST), then a stream-train smoke on cuda:0
#   tools/gpu-session.sh bench   ResNet-50 fp16 training step images/s, 224-only and 1x224 + 8x96, next
#                                to PyTorch eager on the same GPU, and DINO augmentation images/s
#   tools/gpu-session.sh all     the four in turn (setup + build take about 5 minutes on 16 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BUILD=${BUILD:-build-gpu}
VENV=${VENV:-.venv-gpu}
export SYNTH_FMNIST_DIR=${SYNTH_FMNIST_DIR:-$PWD/.deps/fashion-mnist}
export PATH=/usr/local/cuda/bin:$PATH

setup() {
  test -d .deps/wheels || { echo "no .deps/: run tools/gpu-deps.sh on the CPU machine and carry .deps" >&2; return 1; }
  python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/python3" -m pip install -q --no-index --find-links .deps/wheels \
    diffusers transformers safetensors torchvision pytest >"$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; return 1; }
  "$VENV/bin/python3" -c 'import torch, torchvision, diffusers, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "torchvision", torchvision.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__)' | tee "$OUT/versions.txt"
}

build() {
  local arch
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)  # e.g. 9.0 on H100/H200
  if ! TORCH_CUDA_ARCH_LIST="$arch" cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DSYNTH_PYTHON="$PWD/$VENV/bin/python3" -DSYNTH_BENCH=ON >"$OUT/configure.log" 2>&1; then
    tail -40 "$OUT/configure.log"
    return 1
  fi
  if ! cmake --build "$BUILD" -j "$(nproc)" >"$OUT/build.log" 2>&1; then
    grep -E -A4 "error|Error" "$OUT/build.log" | head -120
    return 1
  fi
  echo "built $BUILD for sm_${arch/./} ($(grep -c '^\[' "$OUT/build.log") steps)"
}

run_tests() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  local rc=0
  ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 600 >"$OUT/ctest_gpu.log" 2>&1 || rc=$?
  grep -E "Test +#|tests passed|FAILED|Failed|skipped" "$OUT/ctest_gpu.log" | tail -30
  "$BUILD/bin/stream-train" configs/smoke.toml --set train.device=cuda --set generator.device=cuda \
    --set eval.path="$SYNTH_FMNIST_DIR" --set run.dir="$OUT/runs" --set run.name=smoke-cuda >"$OUT/smoke_cuda.log" 2>&1 || rc=$?
  tail -5 "$OUT/smoke_cuda.log"
  return $rc
}

bench() {
  local step="$BUILD/bench/train/bench_train_step"
  for crops in 224 multi; do
    "$step" --device cuda --precision fp16 --batch 256 --crops "$crops" --peer | tee "$OUT/train_step_fp16_$crops.txt"
  done
  "$BUILD/bench/augment/bench_dino" | tee "$OUT/dino.txt"
}

case "${1:-all}" in
  setup) setup ;;
  build) build ;;
  test) run_tests ;;
  bench) bench ;;
  all) setup && build && run_tests && bench ;;
  *) echo "usage: tools/gpu-session.sh setup|build|test|bench|all" >&2; exit 2 ;;
esac
