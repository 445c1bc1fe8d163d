#!/usr/bin/env bash
# The GPU checks in as few device calls as possible (the GPU box: LibTorch 2.x from the Python torch
# install, CUDA 13, no network; carry .deps/ from tools/gpu-deps.sh). Each step is one call of at
# most 10 minutes; logs and figures go to $OUT (the device tool's folder), or gpu-out/.
#
#   tools/gpu-session.sh build   configure + build the CUDA flavor into build-cuda/ (kept while the box is warm)
#   tools/gpu-session.sh test    ctest of the CUDA flavor (GPU parity tests included)
#   tools/gpu-session.sh bench   ResNet-50 fp16 training step images/s, 224-only and 1x224 + 8x96, next to
#                                PyTorch eager on the same GPU (issue 6), and DINO augmentation images/s
#   tools/gpu-session.sh all     the three in turn
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BUILD=${BUILD:-build-cuda}

build() {
  local prefix
  prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSYNTH_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$prefix" >"$OUT/configure.log" 2>&1; then
    tail -40 "$OUT/configure.log"
    return 1
  fi
  if ! cmake --build "$BUILD" -j "$(nproc)" >"$OUT/build.log" 2>&1; then
    grep -E -A4 "error|Error" "$OUT/build.log" | head -120
    return 1
  fi
  echo "built $BUILD ($(grep -c '^\[' "$OUT/build.log") steps)"
}

run_tests() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  local rc=0
  ctest --test-dir "$BUILD" --output-on-failure -j 4 --timeout 900 >"$OUT/ctest.log" 2>&1 || rc=$?
  grep -E "MESSAGE|Test +#|tests passed|FAILED|Failed" "$OUT/ctest.log" | tail -60
  return $rc
}

bench() {
  local step="$BUILD/bench/train/bench_train_step"
  for crops in 224 multi; do
    "$step" --device cuda --precision fp16 --batch 256 --crops "$crops" --peer | tee "$OUT/train_step_fp16_$crops.txt"
  done
  "$step" --device cuda --precision bf16 --batch 256 --crops multi | tee "$OUT/train_step_bf16_multi.txt"
  "$BUILD/bench/augment/bench_dino" | tee "$OUT/dino.txt"
}

case "${1:-all}" in
  build) build ;;
  test) run_tests ;;
  bench) bench ;;
  all) build && run_tests && bench ;;
  *) echo "usage: tools/gpu-session.sh build|test|bench|all" >&2; exit 2 ;;
esac
