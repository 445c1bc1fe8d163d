#!/usr/bin/env bash
# Builds the CPU flavor and runs the whole test suite (what .ci/run calls), syntax-checks the
# CUDA flavor's host code, then runs the ThreadSanitizer build of the torch-free concurrency tests
# (ring, ledger, batcher).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 900

# The CUDA flavor's host code (NCCL, GPU augmentation, GPU tests), syntax-checked against the local
# LibTorch and CUDA headers where the toolkit is installed (CI has it; nothing CUDA runs here).
if [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda_runtime.h" ]; then
  python3 tools/check-cuda-host.py "$BUILD_DIR"
fi

# LibTorch is not instrumented, so only the torch-free stream stage runs under TSan.
cmake -S . -B "$BUILD_DIR-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=thread \
      -DSYNTH_BENCH=OFF >/dev/null
cmake --build "$BUILD_DIR-tsan" -j "$JOBS" --target test_stream test_core
SYNTH_STRESS_ITEMS=${SYNTH_TSAN_STRESS_ITEMS:-1000000} TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  ctest --test-dir "$BUILD_DIR-tsan" --output-on-failure -R '^test_(stream|core)$'
