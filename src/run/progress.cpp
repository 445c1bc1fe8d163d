#include "run/progress.hpp"

#include <cmath>
#include <cstdio>

namespace synth {

std::string format_si(double value) {
  if (!std::isfinite(value)) return "--";
  static const char* const kUnits[] = {"", "k", "M", "G", "T", "P"};
  const char* sign = value < 0 ? "-" : "";
  value = std::fabs(value);
  char buf[32];
  for (int u = 0; u < 6; ++u) {
    const double scaled = value / std::pow(1000.0, u);
    // Move to the next unit when rounding to three digits would print "1000".
    if (scaled >= 999.5 && u < 5) continue;
    const int decimals = scaled < 9.995 ? 2 : scaled < 99.95 ? 1 : 0;
    std::snprintf(buf, sizeof buf, "%s%.*f%s", sign, decimals, scaled, kUnits[u]);
    return buf;
  }
  return "--";
}

std::string format_count(uint64_t count) {
  return count < 1000 ? std::to_string(count) : format_si(double(count));
}

std::string format_rate(double images_per_second) { return format_si(images_per_second) + " img/s"; }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e12) return "--";
  const uint64_t s = uint64_t(std::llround(seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llus", (unsigned long long)s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%llum%02llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
  } else if (s < 100 * 3600) {
    std::snprintf(buf, sizeof buf, "%lluh%02llum", (unsigned long long)(s / 3600), (unsigned long long)(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llud%02lluh", (unsigned long long)(s / 86400), (unsigned long long)(s % 86400 / 3600));
  }
  return buf;
}

Progress::Progress(uint64_t total_images, uint64_t start_images, double interval_seconds)
    : total_(total_images), start_(start_images), interval_(interval_seconds) {}

double Progress::rate(uint64_t images_done, double elapsed_seconds) const {
  if (!(elapsed_seconds > 0) || images_done <= start_) return 0;
  return double(images_done - start_) / elapsed_seconds;
}

std::string Progress::line(uint64_t images_done, double elapsed_seconds) const {
  const double r = rate(images_done, elapsed_seconds);
  const double percent = total_ ? 100.0 * double(images_done) / double(total_) : 100.0;
  std::string eta = "--";
  if (images_done >= total_) {
    eta = "0s";
  } else if (r > 0) {
    eta = format_duration(double(total_ - images_done) / r);
  }
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.1f%%", percent);
  return format_count(images_done) + "/" + format_count(total_) + " images (" + pct + "), " + format_rate(r) +
         ", ETA " + eta;
}

bool Progress::due(double elapsed_seconds) {
  if (elapsed_seconds - last_printed_ < interval_) return false;
  last_printed_ = elapsed_seconds;
  return true;
}

}  // namespace synth
