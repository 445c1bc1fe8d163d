#include "run/metrics.hpp"

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace synth {

MetricsWriter::MetricsWriter(const std::filesystem::path& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "ab");
  if (!file_) throw InputError("cannot open metrics file '" + path.string() + "': " + std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::write(const nlohmann::json& record) {
  if (!record.is_object()) throw Error("metrics record for '" + path_.string() + "' must be a JSON object, got " + record.type_name());
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(mutex_);
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw Error("cannot write metrics file '" + path_.string() + "': " + std::strerror(errno));
}

}  // namespace synth
