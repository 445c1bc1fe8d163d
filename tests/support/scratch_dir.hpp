// A fresh, empty folder under the system temp directory for one test, removed with everything in
// it when the test ends. Names carry the pid and a counter, so parallel test binaries never meet.
#pragma once
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace synth::test {

struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& tag = "scratch") {
    static std::atomic<int> n{0};
    path = std::filesystem::temp_directory_path() /
           ("synth_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::string file(const std::string& name) const { return (path / name).string(); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

}  // namespace synth::test
