// RealProducer: decoder threads that feed a real-image Dataset into the ring in a seeded,
// epoch-wise shuffled order. Global stream index i is epoch e = i / N, position p = i % N, item
// perm_e[p], where perm_e is a Fisher-Yates permutation drawn from CounterRng(seed, e, kShuffle):
// the order depends only on (seed, i), never on the thread count or timing, and a restart can
// resume at any index.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "data/dataset.hpp"
#include "stream/producer.hpp"
#include "stream/ring.hpp"

namespace synth {

// The shuffle of epoch `epoch`: a permutation of [0, n).
std::vector<int64_t> epoch_permutation(uint64_t seed, uint64_t epoch, int64_t n);

class RealProducer final : public Producer {
 public:
  // Produces the stream indices of `indices` with `threads` decoder threads. With
  // skip_corrupt an unreadable item is replaced by the next loadable one in the epoch's order
  // (deterministic) and counted in skipped(); otherwise its InputError stops the stream.
  RealProducer(const Dataset& dataset, Ring& ring, uint64_t seed, IndexSequence indices, int threads, bool skip_corrupt);
  RealProducer(const RealProducer&) = delete;
  RealProducer& operator=(const RealProducer&) = delete;

  void start() override;
  // Waits for every thread; rethrows the first exception a thread hit (which already closed the
  // ring so consumers woke up).
  void join() override;
  uint64_t produced() const override { return produced_.load(); }
  uint64_t skipped() const override { return skipped_.load(); }

 private:
  void run();
  void fill(int slot, uint64_t index);
  std::shared_ptr<const std::vector<int64_t>> permutation(uint64_t epoch);

  const Dataset& dataset_;
  Ring& ring_;
  uint64_t seed_;
  IndexSequence indices_;
  int thread_count_;
  bool skip_corrupt_;
  int64_t n_;
  std::atomic<uint64_t> next_;
  std::atomic<uint64_t> skipped_{0};
  std::atomic<uint64_t> produced_{0};
  std::mutex mutex_;  // guards perms_
  std::map<uint64_t, std::shared_ptr<const std::vector<int64_t>>> perms_;
  ProducerThreads threads_;  // last: joined before the members its threads use are destroyed
};

// The real-image source of a config: `dataset` (open_train_dataset(cfg), which must outlive it)
// fed by data.decode_threads RealProducer threads, shuffled by run.seed, skipping corrupt items
// when data.on_corrupt = "skip".
ImageSource real_image_source(const Config& cfg, const Dataset& dataset);

}  // namespace synth
