// One main for every test binary: doctest's, after the host allocator tuning the mains use
// (core/host_memory.hpp), so tests exercise LibTorch the way the programs do.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "core/host_memory.hpp"

int main(int argc, char** argv) {
  synth::keep_freed_memory();
  return doctest::Context(argc, argv).run();
}
