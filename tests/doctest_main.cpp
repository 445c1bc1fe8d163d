// One main for every test binary: doctest's, after the host allocator tuning the mains use
// (core/host_memory.hpp), so tests exercise LibTorch the way the programs do. The GPU test
// binaries (test_*_gpu, built from tests/<stage>/test_*_gpu.cpp) first look for a CUDA device and,
// without one, say so and exit with the code CTest counts as skipped (cmake/synth.cmake).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "core/host_memory.hpp"
#if defined(SYNTH_GPU_TEST)
#include <torch/cuda.h>
#endif

int main(int argc, char** argv) {
#if defined(SYNTH_GPU_TEST)
  if (!torch::cuda::is_available()) {
    std::printf("skipped: no CUDA device\n");
    return SYNTH_SKIP_RETURN_CODE;
  }
#endif
  synth::keep_freed_memory();
  return doctest::Context(argc, argv).run();
}
