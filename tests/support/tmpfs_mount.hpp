// A small tmpfs for one test - a file system to fill, for the disk-full paths - mounted on a
// folder and unmounted when the test ends (lazily: a file still open never leaks the mount).
// Mounting needs root. Tests that mount are declared `TEST_CASE(name * skip_unless_root(name))`:
// other users see them skipped, with the reason on stderr; as root a refused mount fails them.
#pragma once
#include <doctest/doctest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace synth::test {

inline doctest::skip skip_unless_root(const char* test) {
  const bool skip = ::geteuid() != 0;
  if (skip) std::fprintf(stderr, "skipped (needs root to mount a tmpfs): %s\n", test);
  return doctest::skip(skip);
}

struct TmpfsMount {
  std::filesystem::path dir;
  TmpfsMount(const std::filesystem::path& at, uint64_t bytes) : dir(at) {
    std::filesystem::create_directories(dir);
    const std::string options = "size=" + std::to_string(bytes) + ",mode=0755";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) != 0)
      throw std::runtime_error("cannot mount a tmpfs on " + dir.string() + ": " + std::strerror(errno));
  }
  ~TmpfsMount() { ::umount2(dir.c_str(), MNT_DETACH); }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
};

}  // namespace synth::test
