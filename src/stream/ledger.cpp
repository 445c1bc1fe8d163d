// Ledger: a low watermark plus the sparse set of recorded indices above it. Producers run at most
// `ring.slots` indices ahead of the trainer, so the sparse set stays small and a checkpoint's
// ledger is a few bytes however long the run.
#include "stream/ledger.hpp"

#include <cerrno>
#include <cstdlib>

#include "core/error.hpp"

namespace synth {

bool Ledger::record(uint64_t index) {
  if (index < low_ || !above_.insert(index).second) {
    ++duplicates_;
    return false;
  }
  ++count_;
  advance();
  return true;
}

void Ledger::advance() {
  while (!above_.empty() && *above_.begin() == low_) {
    above_.erase(above_.begin());
    ++low_;
  }
}

bool Ledger::contains(uint64_t index) const { return index < low_ || above_.count(index) > 0; }

std::vector<uint64_t> Ledger::gaps(uint64_t end, size_t max) const {
  std::vector<uint64_t> out;
  auto it = above_.begin();
  for (uint64_t i = low_; i < end && out.size() < max; ++i) {
    while (it != above_.end() && *it < i) ++it;
    if (it != above_.end() && *it == i) continue;
    out.push_back(i);
  }
  return out;
}

uint64_t Ledger::gap_count(uint64_t end) const {
  if (end <= low_) return 0;
  const uint64_t recorded_below_end = uint64_t(std::distance(above_.begin(), above_.lower_bound(end)));
  return (end - low_) - recorded_below_end;
}

bool Ledger::exactly_once(uint64_t end) const { return duplicates_ == 0 && low_ == end && above_.empty(); }

std::string Ledger::serialize() const {
  std::string out = "low=" + std::to_string(low_) + ";dup=" + std::to_string(duplicates_) + ";sparse=";
  bool first = true;
  for (uint64_t v : above_) {
    if (!first) out += ',';
    out += std::to_string(v);
    first = false;
  }
  return out;
}

namespace {

// Strict unsigned decimal: digits only, no sign, no overflow.
uint64_t parse_u64(const std::string& text, const std::string& field, const std::string& whole) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
    throw InputError("ledger: field '" + field + "' has invalid number '" + text + "' in '" + whole.substr(0, 200) + "'");
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno == ERANGE || end != text.c_str() + text.size())
    throw InputError("ledger: field '" + field + "' number '" + text + "' out of range");
  return uint64_t(v);
}

std::string expect_field(const std::string& text, size_t& pos, const std::string& name, bool last) {
  const std::string prefix = name + "=";
  if (text.compare(pos, prefix.size(), prefix) != 0)
    throw InputError("ledger: expected '" + prefix + "' at offset " + std::to_string(pos) + " in '" +
                     text.substr(0, 200) + "'");
  pos += prefix.size();
  size_t end = last ? text.size() : text.find(';', pos);
  if (end == std::string::npos)
    throw InputError("ledger: missing ';' after field '" + name + "' in '" + text.substr(0, 200) + "'");
  std::string value = text.substr(pos, end - pos);
  pos = last ? end : end + 1;
  return value;
}

}  // namespace

Ledger Ledger::deserialize(const std::string& text) {
  size_t pos = 0;
  Ledger l;
  l.low_ = parse_u64(expect_field(text, pos, "low", false), "low", text);
  l.duplicates_ = parse_u64(expect_field(text, pos, "dup", false), "dup", text);
  const std::string sparse = expect_field(text, pos, "sparse", true);
  l.count_ = l.low_;
  if (!sparse.empty()) {
    size_t start = 0;
    uint64_t prev = l.low_;
    for (;;) {
      const size_t comma = sparse.find(',', start);
      const std::string item = sparse.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      const uint64_t v = parse_u64(item, "sparse", text);
      // serialize() writes a strictly increasing list above low+0 (low itself would have advanced
      // the watermark), so anything else is a damaged or hand-edited checkpoint.
      if (v <= prev)
        throw InputError("ledger: sparse index " + std::to_string(v) + " is not above " +
                         (prev == l.low_ ? "the low watermark " : "the previous index ") + std::to_string(prev));
      l.above_.insert(l.above_.end(), v);
      ++l.count_;
      prev = v;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return l;
}

}  // namespace synth
