#include "stream/shard.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"

namespace synth {

StreamShard::StreamShard(uint64_t origin, uint64_t end, int64_t global_batch, int rank, int ranks)
    : origin_(origin), end_(end), batch_(global_batch), rank_(rank), ranks_(ranks) {
  if (global_batch < 1) throw InputError("batch size must be at least 1, got " + std::to_string(global_batch));
  if (ranks < 1 || rank < 0 || rank >= ranks)
    throw InputError("trainer rank " + std::to_string(rank) + " is outside [0, " + std::to_string(ranks) + ")");
  if (origin > end)
    throw InputError("stream range is empty: first index " + std::to_string(origin) + " > end index " + std::to_string(end));
  if (ranks > global_batch)
    throw InputError("train.batch_size = " + std::to_string(global_batch) + " cannot be split over " + std::to_string(ranks) +
                     " trainer ranks");
  const uint64_t n = end - origin, b = uint64_t(global_batch);
  full_steps_ = n / b;
  const uint64_t rest = n % b;
  if (rest != 0 && ranks > 1 && rest < uint64_t(ranks))
    throw InputError("the last step has " + std::to_string(rest) + " images, fewer than the " + std::to_string(ranks) +
                     " trainer ranks; choose train.total_images so that total_images % batch_size is 0 or >= the ranks");
  steps_ = full_steps_ + (rest ? 1 : 0);
  const auto full = part(b);
  per_full_step_ = full.second - full.first;
  const auto last = part(rest);
  positions_ = full_steps_ * per_full_step_ + (last.second - last.first);
}

std::pair<uint64_t, uint64_t> StreamShard::part(uint64_t n) const {
  return {n * uint64_t(rank_) / uint64_t(ranks_), n * uint64_t(rank_ + 1) / uint64_t(ranks_)};
}

uint64_t StreamShard::index(uint64_t position) const {
  if (position >= positions_)
    throw Error("stream shard: position " + std::to_string(position) + " beyond its " + std::to_string(positions_) + " images");
  const uint64_t b = uint64_t(batch_);
  if (position < full_steps_ * per_full_step_) {
    const uint64_t k = position / per_full_step_;
    return origin_ + k * b + part(b).first + position % per_full_step_;
  }
  const uint64_t rest = (end_ - origin_) % b;
  return origin_ + full_steps_ * b + part(rest).first + (position - full_steps_ * per_full_step_);
}

std::pair<uint64_t, uint64_t> StreamShard::step_range(uint64_t k) const {
  if (k >= steps_) throw Error("stream shard: step " + std::to_string(k) + " beyond its " + std::to_string(steps_) + " steps");
  const uint64_t b = uint64_t(batch_);
  const uint64_t begin = origin_ + k * b;
  const auto p = part(std::min<uint64_t>(b, end_ - begin));
  return {begin + p.first, begin + p.second};
}

bool StreamShard::owns(uint64_t index) const {
  if (index < origin_ || index >= end_) return false;
  const auto r = step_range((index - origin_) / uint64_t(batch_));
  return index >= r.first && index < r.second;
}

IndexSequence IndexSequence::of(const StreamShard& shard) {
  IndexSequence s;
  s.size = shard.positions();
  s.at = [shard](uint64_t p) { return shard.index(p); };
  return s;
}

}  // namespace synth
