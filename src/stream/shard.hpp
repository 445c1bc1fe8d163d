// Which stream indices one trainer rank trains on, so that T trainer ranks together train on
// exactly the images one rank would, in the same steps.
//
// A run resumed at image `origin` (always a step boundary: checkpoints are written between steps)
// trains steps k = 0, 1, ... over the global index ranges [origin + kB, origin + kB + n_k) with
// n_k = min(B, end - origin - kB). Trainer rank r of T takes the contiguous part
//   [origin + kB + floor(r n_k / T), origin + kB + floor((r + 1) n_k / T))
// of every step. The parts partition the stream, none is empty when every n_k >= T, and they
// depend only on (origin, end, B, T), so any rank count that divides the work gives the same
// global batches: the sum of the ranks' losses over a step is the one-rank loss (see trainer.cpp).
//
// A rank's positions 0, 1, ... enumerate its indices in increasing order; producers claim
// positions from one counter, which keeps the OrderedBatcher's deadlock-freedom argument.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>

namespace synth {

class StreamShard {
 public:
  // Rank `rank` of `ranks` over [origin, end) in global batches of `global_batch`. Throws
  // InputError when a step would leave a rank without images (a last step shorter than `ranks`).
  StreamShard(uint64_t origin, uint64_t end, int64_t global_batch, int rank, int ranks);
  // All of [first, end) on a single rank.
  static StreamShard whole(uint64_t first, uint64_t end, int64_t batch = 1) { return StreamShard(first, end, batch, 0, 1); }

  uint64_t positions() const { return positions_; }  // how many indices this rank trains on
  uint64_t index(uint64_t position) const;           // global index at a position (increasing)
  uint64_t steps() const { return steps_; }
  // This rank's global index range [begin, end) in step k (k < steps()).
  std::pair<uint64_t, uint64_t> step_range(uint64_t k) const;
  bool owns(uint64_t index) const;  // index is one of this rank's

  uint64_t origin() const { return origin_; }
  uint64_t end() const { return end_; }
  int64_t global_batch() const { return batch_; }
  int rank() const { return rank_; }
  int ranks() const { return ranks_; }

 private:
  std::pair<uint64_t, uint64_t> part(uint64_t n) const;  // [lo, hi) of a step of n images

  uint64_t origin_, end_;
  int64_t batch_;
  int rank_, ranks_;
  uint64_t full_steps_ = 0, steps_ = 0, per_full_step_ = 0, positions_ = 0;
};

// A producer's work: `size` stream indices, at(0) < at(1) < ...; a StreamShard's positions, or a
// subsequence of them (a generator rank feeding part of a trainer's shard).
struct IndexSequence {
  uint64_t size = 0;
  std::function<uint64_t(uint64_t)> at;

  static IndexSequence of(const StreamShard& shard);
  static IndexSequence range(uint64_t first, uint64_t end) { return of(StreamShard::whole(first, end)); }
};

}  // namespace synth
