// OrderedBatcher: see batcher.hpp for the ordering and deadlock-freedom argument.
#include "stream/batcher.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"

namespace synth {

OrderedBatcher::OrderedBatcher(Ring& ring, int64_t batch_size, uint64_t first_index, uint64_t end_index)
    : OrderedBatcher(ring, StreamShard::whole(first_index, end_index, batch_size)) {}

OrderedBatcher::OrderedBatcher(Ring& ring, const StreamShard& shard) : ring_(ring), shard_(shard) {
  const uint64_t share = shard.steps() ? shard.step_range(0).second - shard.step_range(0).first : 0;
  if (ring.slots() < share)
    throw InputError("ring.slots = " + std::to_string(ring.slots()) + " is smaller than the batch size " +
                     std::to_string(share) + "; the ordered batcher needs ring.slots >= batch size");
}

uint64_t OrderedBatcher::next_index() const {
  return step_ < shard_.steps() ? shard_.step_range(step_).first : shard_.end();
}

std::optional<std::vector<int>> OrderedBatcher::next() {
  if (step_ >= shard_.steps()) return std::nullopt;
  const auto [b, e] = shard_.step_range(step_);
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
    if (index < b || !shard_.owns(index) || held_.count(index)) {
      ring_.release(*slot);
      throw Error("stream: unexpected image index " + std::to_string(index) + " while assembling batch [" +
                  std::to_string(b) + ", " + std::to_string(e) + ") of stream range ending at " +
                  std::to_string(shard_.end()) + (index >= b && shard_.owns(index) ? " (duplicate)" : " (out of range)"));
    }
    held_.emplace(index, *slot);
    if (index < e) ++have;
  }
  std::vector<int> out;
  out.reserve(size_t(want));
  auto it = held_.begin();
  for (uint64_t k = 0; k < want; ++k) out.push_back((it++)->second);
  held_.erase(held_.begin(), it);
  ++step_;
  return out;
}

}  // namespace synth
