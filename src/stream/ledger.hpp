// The ledger proves the stream protocol (every image index trained on exactly once): it records
// each consumed global index, reports duplicates and gaps, and serializes compactly for
// checkpoints as a low watermark (every index below it was seen) plus the sparse set above it.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace synth {

class Ledger {
 public:
  // Records one consumed index; returns false (and counts a duplicate) if it was seen before.
  bool record(uint64_t index);
  bool contains(uint64_t index) const;
  uint64_t low_watermark() const { return low_; }  // all of [0, low) were recorded
  uint64_t count() const { return count_; }        // distinct indices recorded
  uint64_t duplicates() const { return duplicates_; }
  // Indices in [0, end) never recorded, at most `max` of them listed; gap_count counts them all.
  std::vector<uint64_t> gaps(uint64_t end, size_t max = 64) const;
  uint64_t gap_count(uint64_t end) const;
  // True when [0, end) was recorded exactly once each and nothing beyond.
  bool exactly_once(uint64_t end) const;

  // Compact text form "low=<n>;dup=<n>;sparse=<i>,<i>,..." (stable across versions).
  std::string serialize() const;
  static Ledger deserialize(const std::string& text);  // throws InputError on malformed input

 private:
  void advance();
  uint64_t low_ = 0, count_ = 0, duplicates_ = 0;
  std::set<uint64_t> above_;  // recorded indices >= low_
};

}  // namespace synth
