// The run directory <run.dir>/<run.name>/: the effective config.toml (written atomically), log.txt,
// metrics.jsonl and checkpoints/. A finished or half-finished run is never overwritten by accident:
// reopening a non-empty directory needs --resume.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "config/config.hpp"

// spdlog and fmt stay inside src/run/*.cpp, which never include LibTorch: the torch wheel's include
// folder ships its own fmt (12.x, found first on every torch target's include path) while Debian's
// libspdlog is built against libfmt 9, so a file that saw both would mix two fmt versions.
// Everything else logs through RunDir::info/file_error.
namespace spdlog {
class logger;
}

namespace synth {

struct RunDir {
  std::filesystem::path root;          // <run.dir>/<run.name>
  std::filesystem::path config_file;   // root/config.toml
  std::filesystem::path log_file;      // root/log.txt
  std::filesystem::path metrics_file;  // root/metrics.jsonl
  std::filesystem::path checkpoints;   // root/checkpoints
  // Console (stdout) + log.txt; created here, not registered in spdlog's global registry.
  std::shared_ptr<spdlog::logger> logger;
  // log.txt only (same file sink): for the final error, which the main already prints on stderr.
  std::shared_ptr<spdlog::logger> file_logger;
  bool resumed = false;

  void info(const std::string& line) const;        // console + log.txt
  void file_error(const std::string& line) const;  // log.txt only
};

// Creates (or, with resume, reopens) the run directory and writes cfg as config.toml. Throws
// InputError when the directory is non-empty without resume, or missing/empty with resume. On
// resume, settings that differ from the stored config.toml are logged as a warning. With
// console = false the logger writes only to log.txt.
RunDir open_run_dir(const Config& cfg, bool resume, bool console = true);

// Writes content to a temporary file next to path, flushes it and renames it over path, so a
// reader never sees a half-written file. Throws synth::Error naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);

}  // namespace synth
