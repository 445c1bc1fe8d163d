#!/usr/bin/env bash
# Configures and builds synthstream into build/ (or $BUILD_DIR) against the project venv's LibTorch
# (tools/install-deps.sh), the CUDA kernels included wherever nvcc is (CUDA 13 at /usr/local/cuda);
# extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
if [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
# ccache can reuse compiles that include the precompiled torch header only with these.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
# `import synthstream` in the project venv: the package as built here (python/CMakeLists.txt).
if [ -d "$BUILD_DIR/python/synthstream" ]; then
  for site in .venv/lib/python3*/site-packages; do
    [ -d "$site" ] && realpath "$BUILD_DIR/python" > "$site/synthstream-build.pth"
  done
fi
