// write_file_atomic for the fuzz build: checkpoint.cpp's only use of src/run/run_dir.cpp, which
// would pull spdlog, fmt and the config stage into the torch fuzz targets. Same contract
// (temp file, flush, fsync, rename; synth::Error naming the path), written plainly.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.hpp"
#include "run/run_dir.hpp"

namespace synth {

void write_file_atomic(const std::filesystem::path& path, const std::string& content) {
  const std::string tmp = path.string() + ".tmp" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot write '" + tmp + "': " + std::strerror(errno));
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  std::fclose(f);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("cannot write '" + path.string() + "'");
  }
}

}  // namespace synth
