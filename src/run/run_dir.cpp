#include "run/run_dir.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "config/load.hpp"
#include "core/error.hpp"

namespace synth {
namespace fs = std::filesystem;

void write_file_atomic(const fs::path& path, const std::string& content) {
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot write '" + tmp.string() + "': " + std::strerror(errno));
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  const int err = errno;
  std::fclose(f);
  std::error_code ec;
  if (!ok) {
    fs::remove(tmp, ec);
    throw Error("cannot write '" + tmp.string() + "': " + std::strerror(err));
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error("cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
  }
}

namespace {

bool is_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::directory_iterator(p, ec) == fs::directory_iterator();
}

struct Loggers {
  std::shared_ptr<spdlog::logger> both, file_only;
};

Loggers make_loggers(const fs::path& root, const fs::path& log_file, bool console) {
  // Unique names keep several runs in one process (tests) apart; the logger is never registered.
  static std::atomic<int> counter{0};
  std::vector<spdlog::sink_ptr> sinks;
  if (console) {
    auto out = std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
    out->set_pattern("[%H:%M:%S] %^%v%$");
    sinks.push_back(out);
  }
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  try {
    file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file.string(), /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    throw InputError("cannot open log file '" + log_file.string() + "': " + e.what());
  }
  file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  sinks.push_back(file);
  const std::string name = "run" + std::to_string(counter++) + ":" + root.string();
  Loggers out{std::make_shared<spdlog::logger>(name, sinks.begin(), sinks.end()),
              std::make_shared<spdlog::logger>(name + ":file", file)};
  for (const auto& logger : {out.both, out.file_only}) {
    logger->set_level(spdlog::level::info);
    // Every line reaches log.txt before the next step, so a crash loses nothing.
    logger->flush_on(spdlog::level::info);
  }
  return out;
}

}  // namespace

void RunDir::info(const std::string& line) const { logger->info("{}", line); }

void RunDir::file_error(const std::string& line) const { file_logger->error("{}", line); }

RunDir open_run_dir(const Config& cfg, bool resume, bool console) {
  RunDir rd;
  rd.root = fs::path(cfg.run.dir) / cfg.run.name;
  rd.config_file = rd.root / "config.toml";
  rd.log_file = rd.root / "log.txt";
  rd.metrics_file = rd.root / "metrics.jsonl";
  rd.checkpoints = rd.root / "checkpoints";
  rd.resumed = resume;
  const std::string shown = rd.root.string();

  std::error_code ec;
  const bool exists = fs::exists(rd.root, ec);
  if (exists && !fs::is_directory(rd.root, ec)) throw InputError(shown + " exists and is not a directory; choose another run.name");
  if (resume) {
    if (!exists || is_empty_dir(rd.root))
      throw InputError(shown + (exists ? " is empty" : " does not exist") +
                       "; nothing to resume (drop --resume to start a new run)");
  } else if (exists && !is_empty_dir(rd.root)) {
    throw InputError(shown + " exists and is not empty; pass --resume or choose another run.name");
  }
  fs::create_directories(rd.checkpoints, ec);
  if (ec) throw InputError("cannot create run directory '" + rd.checkpoints.string() + "': " + ec.message());

  Loggers loggers = make_loggers(rd.root, rd.log_file, console);
  rd.logger = loggers.both;
  rd.file_logger = loggers.file_only;
  if (std::FILE* f = std::fopen(rd.metrics_file.c_str(), "ab")) {
    std::fclose(f);
  } else {
    throw InputError("cannot create metrics file '" + rd.metrics_file.string() + "': " + std::strerror(errno));
  }

  // On resume, say which settings changed since the stored config; the new config is what runs.
  std::string changed;
  if (resume && fs::is_regular_file(rd.config_file, ec)) {
    std::ifstream in(rd.config_file);
    std::ostringstream text;
    text << in.rdbuf();
    try {
      const Config previous = parse_config(text.str(), rd.config_file.string());
      for (const auto& key : diff_settings(previous, cfg)) changed += (changed.empty() ? "" : ", ") + key;
    } catch (const Error& e) {
      changed = std::string("(stored config unreadable: ") + e.what() + ")";
    }
  }
  write_file_atomic(rd.config_file, to_toml(cfg));
  if (resume) {
    rd.logger->info("resuming run in {}", shown);
    if (!changed.empty()) rd.logger->warn("settings changed since the stored config.toml: {}", changed);
  } else {
    rd.logger->info("new run in {}", shown);
  }
  return rd;
}

}  // namespace synth
