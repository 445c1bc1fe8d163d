#!/usr/bin/env bash
# Builds synthstream (tools/build.sh: the CUDA build, linked against the venv's libtorch_cuda), shows
# that it is one (kernel architectures, libtorch_cuda linked), runs the whole test suite (GPU tests
# report "skipped: no CUDA device" where there is none) and the Python reference suite, then the
# ThreadSanitizer build of the
# torch-free concurrency tests (ring, ledger, batcher), then the parsers' fuzzers. What .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
BUILD_DIR=${BUILD_DIR:-build}
if [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
# Tests run side by side and spawn processes; OpenMP workers spinning while they wait (libgomp's
# default) would steal the cores the others need (cmake/synth.cmake: 213 s -> 117 s for two tests).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
start=$(date +%s)
tools/build.sh
echo "build: $(( $(date +%s) - start )) s"

if [ -f "$BUILD_DIR/kernels/libsynth_kernels.a" ]; then
  # cuobjdump: the toolkit's where it has one, else the copy inside the venv's triton (a torch dependency).
  cuobjdump=$(command -v cuobjdump || ls .venv/lib/python3*/site-packages/triton/backends/nvidia/bin/cuobjdump)
  "$cuobjdump" --list-elf "$BUILD_DIR/kernels/libsynth_kernels.a" | tee "$BUILD_DIR/kernels-elf.txt"
  for sm in sm_80 sm_90; do grep -q "$sm" "$BUILD_DIR/kernels-elf.txt" || { echo "no $sm code in the kernels" >&2; exit 1; }; done
  ldd "$BUILD_DIR/bin/stream-train" | grep -E "libtorch_cuda|libc10_cuda" || { echo "stream-train does not link libtorch_cuda" >&2; exit 1; }
fi

ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 900
echo "C++ suite done: $(( $(date +%s) - start )) s since start"

# The live reference suite: our binaries against torchvision, diffusers and transformers (the
# venv's pinned versions) on models built at test time (tests/reference/README.md).
ref_start=$(date +%s)
SYNTH_BUILD_DIR="$BUILD_DIR" .venv/bin/python3 -m pytest tests/reference -q
echo "reference suite: $(( $(date +%s) - ref_start )) s"

# LibTorch is not instrumented, so only the torch-free stream stage runs under TSan (no CUDA code).
cmake -S . -B "$BUILD_DIR-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=thread \
      -DSYNTH_CUDA=OFF -DSYNTH_BENCH=OFF -DSYNTH_PYTHON_PACKAGE=OFF >/dev/null
cmake --build "$BUILD_DIR-tsan" -j "$JOBS" --target test_stream test_core
SYNTH_STRESS_ITEMS=${SYNTH_TSAN_STRESS_ITEMS:-1000000} TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  ctest --test-dir "$BUILD_DIR-tsan" --output-on-failure -R '^test_(stream|core)$'

# Coverage-guided fuzzing of every parser of outside input (libFuzzer + ASan + UBSan, its own clang
# build in build-fuzz/): replays every seed and every fixed finding, then fuzzes each target for
# SYNTH_FUZZ_SECONDS (30 s: tools/fuzz.sh says why that is the CI budget).
fuzz_start=$(date +%s)
tools/fuzz.sh "${SYNTH_FUZZ_SECONDS:-30}"
echo "fuzzing: $(( $(date +%s) - fuzz_start )) s"
echo "all tests done: $(( $(date +%s) - start )) s"
