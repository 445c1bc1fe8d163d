// OrderedBatcher: see batcher.hpp for the ordering and deadlock-freedom argument.
#include "stream/batcher.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"

namespace synth {

OrderedBatcher::OrderedBatcher(Ring& ring, int64_t batch_size, uint64_t first_index, uint64_t end_index)
    : ring_(ring), batch_(batch_size), next_(first_index), end_(end_index) {
  if (batch_size < 1) throw InputError("batch size must be at least 1, got " + std::to_string(batch_size));
  if (ring.slots() < uint64_t(batch_size))
    throw InputError("ring.slots = " + std::to_string(ring.slots()) + " is smaller than the batch size " +
                     std::to_string(batch_size) + "; the ordered batcher needs ring.slots >= batch size");
  if (first_index > end_index)
    throw InputError("stream range is empty: first index " + std::to_string(first_index) + " > end index " +
                     std::to_string(end_index));
}

std::optional<std::vector<int>> OrderedBatcher::next() {
  if (next_ >= end_) return std::nullopt;
  const uint64_t b = next_;
  const uint64_t e = std::min<uint64_t>(end_, b + uint64_t(batch_));
  const uint64_t want = e - b;
  // Every held key is >= b (smaller ones are rejected), so the batch is complete exactly when
  // `want` held keys lie below e.
  uint64_t have = 0;
  for (auto it = held_.begin(); it != held_.end() && it->first < e; ++it) ++have;
  while (have < want) {
    const std::optional<int> slot = ring_.acquire_ready();
    if (!slot) {
      if (held_.empty()) return std::nullopt;
      throw Error("stream: the ring closed with batch [" + std::to_string(b) + ", " + std::to_string(e) + ") incomplete (" +
                  std::to_string(have) + " of " + std::to_string(want) + " images, " + std::to_string(held_.size()) +
                  " held in all): a producer stopped early");
    }
    const uint64_t index = ring_.meta(*slot).index;
    if (index < b || index >= end_ || held_.count(index)) {
      ring_.release(*slot);
      throw Error("stream: unexpected image index " + std::to_string(index) + " while assembling batch [" +
                  std::to_string(b) + ", " + std::to_string(e) + ") of stream range ending at " + std::to_string(end_) +
                  (index >= b && index < end_ ? " (duplicate)" : " (out of range)"));
    }
    held_.emplace(index, *slot);
    if (index < e) ++have;
  }
  std::vector<int> out;
  out.reserve(size_t(want));
  auto it = held_.begin();
  for (uint64_t k = 0; k < want; ++k) out.push_back((it++)->second);
  held_.erase(held_.begin(), it);
  next_ = e;
  return out;
}

}  // namespace synth
