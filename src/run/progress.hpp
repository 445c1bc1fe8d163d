// Console progress lines: "1.20M/12.7M images (9.4%), 12.3k img/s, ETA 1h02m".
#pragma once
#include <cstdint>
#include <string>

namespace synth {

// Three significant digits with a k/M/G/T suffix: 0.5 -> "0.50", 523.4 -> "523", 12345 -> "12.3k".
std::string format_si(double value);
// Image counts: exact below 1000, else format_si ("950", "1.20M").
std::string format_count(uint64_t count);
// "12.3k img/s".
std::string format_rate(double images_per_second);
// "45s", "12m05s", "1h02m" (below 100 h), "5d03h"; "--" for negative or non-finite durations.
std::string format_duration(double seconds);

// Rate and ETA of one run. The rate is the average since the tracker started (images done then, e.g.
// at a resumed checkpoint, do not count), which is stable and exactly reproducible in tests.
class Progress {
 public:
  Progress(uint64_t total_images, uint64_t start_images = 0, double interval_seconds = 5.0);

  double rate(uint64_t images_done, double elapsed_seconds) const;
  // "1.20M/12.7M images (9.4%), 12.3k img/s, ETA 1h02m".
  std::string line(uint64_t images_done, double elapsed_seconds) const;
  // True at most once per interval_seconds of elapsed time (the first call after an interval).
  bool due(double elapsed_seconds);

 private:
  uint64_t total_, start_;
  double interval_, last_printed_ = 0;
};

}  // namespace synth
