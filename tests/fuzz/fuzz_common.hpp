// Shared helpers of the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp).
//
// The contract every harness checks: for any input, a parser either returns a value or throws
// synth::Error (normally synth::InputError naming the file and the defect). A synth::Error is the
// expected outcome for bad input and is swallowed here; anything else - a crash, an ASan/UBSan
// report, a hang, an exception of another type escaping (std::terminate -> abort), running out of
// memory - is a finding that libFuzzer reports with a reproducer.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace fuzz {

// SYNTH_FUZZ_VERBOSE=1 prints every rejection (to see why a seed is refused).
inline bool verbose() {
  static const bool v = std::getenv("SYNTH_FUZZ_VERBOSE") != nullptr;
  return v;
}

// Runs f; a synth::Error (InputError, DamagedCheckpoint, ...) is the expected rejection of bad
// input. Returns true when f returned normally.
template <class F>
bool expect_ok_or_error(F&& f) {
  try {
    f();
    if (verbose()) std::fprintf(stderr, "fuzz: accepted\n");
    return true;
  } catch (const synth::Error& e) {
    if (verbose()) std::fprintf(stderr, "fuzz: rejected: %s\n", e.what());
    return false;
  }
}

// A property the parser promises was broken: abort so libFuzzer keeps the input.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

// One scratch folder per fuzzing process, in RAM (/dev/shm) where it exists, removed at exit.
// For parsers whose only entry point takes a path.
inline const std::string& scratch_dir() {
  // Never destroyed: the atexit handler below runs after the destructors of statics built later.
  static const std::string& dir = *new std::string([] {
    const char* base = std::getenv("SYNTH_FUZZ_TMP");
    std::string root = base && *base ? base : (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
    std::string d = root + "/synth-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }());
  return dir;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();  // the harness's own environment is broken, not the parser
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t w = ::write(fd, data + done, size - done);
    if (w <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += size_t(w);
  }
  ::close(fd);
}

inline void write_file(const std::string& path, const std::string& text) {
  write_file(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// The input cut at every `sep` byte (the separator is not part of any piece).
inline std::vector<std::string> split(const uint8_t* data, size_t size, char sep) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (char(data[i]) == sep) parts.emplace_back();
    else parts.back() += char(data[i]);
  }
  return parts;
}

}  // namespace fuzz
