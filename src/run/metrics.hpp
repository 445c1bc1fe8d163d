// metrics.jsonl: one JSON object per line, appended and flushed line by line so a crashed or still
// running job leaves a file every line of which parses.
#pragma once
#include <cstdio>
#include <filesystem>
#include <mutex>

#include <nlohmann/json_fwd.hpp>

namespace synth {

class MetricsWriter {
 public:
  // Opens path for appending (created when missing). Throws InputError naming the path.
  explicit MetricsWriter(const std::filesystem::path& path);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  // Appends record (must be a JSON object) as one line and flushes it. Thread-safe. Invalid UTF-8
  // in strings is replaced (U+FFFD) rather than failing the run; NaN/inf become null.
  void write(const nlohmann::json& record);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::mutex mutex_;
};

}  // namespace synth
