// RealProducer: see producer.hpp. Each thread takes a free slot BEFORE claiming the next index
// (the OrderedBatcher's deadlock-freedom argument depends on that order), decodes, writes pixels
// and metadata, and publishes.
#include "data/real_source.hpp"

#include <cstring>
#include <numeric>
#include <string>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace synth {

std::vector<int64_t> epoch_permutation(uint64_t seed, uint64_t epoch, int64_t n) {
  std::vector<int64_t> perm(size_t(std::max<int64_t>(n, 0)));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  // Fisher-Yates (Durstenfeld): swap position j with a uniform position in [0, j].
  CounterRng rng(seed, epoch, RngPurpose::kShuffle);
  for (int64_t j = n - 1; j > 0; --j) std::swap(perm[size_t(j)], perm[size_t(rng.below(uint64_t(j) + 1))]);
  return perm;
}

RealProducer::RealProducer(const Dataset& dataset, Ring& ring, uint64_t seed, IndexSequence indices, int threads,
                           bool skip_corrupt)
    : dataset_(dataset),
      ring_(ring),
      seed_(seed),
      indices_(std::move(indices)),
      thread_count_(threads),
      skip_corrupt_(skip_corrupt),
      n_(dataset.size()),
      next_(0),
      threads_(ring) {
  if (threads < 1 || threads > 256) throw InputError("data.decode_threads must be in [1, 256], got " + std::to_string(threads));
  if (n_ <= 0) throw InputError("real-image dataset is empty");
}

void RealProducer::start() {
  threads_.start(thread_count_, [this](int) { run(); });
}

void RealProducer::join() { threads_.join(); }

std::shared_ptr<const std::vector<int64_t>> RealProducer::permutation(uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = perms_.find(epoch);
  if (it != perms_.end()) return it->second;
  auto perm = std::make_shared<const std::vector<int64_t>>(epoch_permutation(seed_, epoch, n_));
  perms_.emplace(epoch, perm);
  // Threads work within a few ring lengths of each other, so two epochs cover every thread.
  while (perms_.size() > 2) perms_.erase(perms_.begin());
  return perm;
}

void RealProducer::fill(int slot, uint64_t index) {
  const uint64_t epoch = index / uint64_t(n_);
  const int64_t pos = int64_t(index % uint64_t(n_));
  const auto perm = permutation(epoch);
  int64_t item = (*perm)[size_t(pos)];
  ImageU8 img;
  try {
    img = dataset_.load(item);
  } catch (const InputError&) {
    if (!skip_corrupt_) throw;
    // Substitute the next loadable item in this epoch's order: deterministic whatever the timing.
    bool found = false;
    for (int64_t k = 1; k < n_ && !found; ++k) {
      const int64_t cand = (*perm)[size_t((pos + k) % n_)];
      try {
        img = dataset_.load(cand);
        item = cand;
        found = true;
      } catch (const InputError&) {
      }
    }
    if (!found) throw;
    skipped_.fetch_add(1);
  }
  if (img.channels != 3 || img.pixels.size() != img.bytes())
    throw Error(dataset_.describe(item) + ": decoder returned an inconsistent image");
  if (img.bytes() > ring_.slot_bytes())
    throw InputError(dataset_.describe(item) + ": image is " + std::to_string(img.height) + "x" + std::to_string(img.width) +
                     "x3 = " + std::to_string(img.bytes()) + " bytes, more than a ring slot holds (" +
                     std::to_string(ring_.slot_bytes()) + " bytes); raise ring.max_height/ring.max_width");
  std::memcpy(ring_.data(slot), img.pixels.data(), img.bytes());
  SlotMeta& m = ring_.meta(slot);
  m.index = index;
  m.label = dataset_.label(item);
  m.source = SourceTag::kReal;
  m.height = img.height;
  m.width = img.width;
  m.channels = 3;
}

void RealProducer::run() {
  for (;;) {
    const std::optional<int> slot = ring_.acquire_free();
    if (!slot) break;  // ring closed (consumer stopped or another thread failed)
    const uint64_t position = next_.fetch_add(1);
    if (position >= indices_.size) {
      // Undo the overshoot so next_ cannot wrap however long the other threads keep asking.
      next_.store(indices_.size);
      ring_.discard(*slot);
      break;
    }
    try {
      fill(*slot, indices_.at(position));
    } catch (...) {
      ring_.discard(*slot);
      throw;  // ProducerThreads keeps it for join() and closes the ring
    }
    ring_.publish(*slot);
    produced_.fetch_add(1);
  }
}

}  // namespace synth

namespace synth {

ImageSource real_image_source(const Config& cfg, const Dataset& dataset) {
  ImageSource source;
  source.name = cfg.data.train_path + " (" + std::to_string(dataset.size()) + " images)";
  source.num_classes = dataset.num_classes();
  source.tag = SourceTag::kReal;
  const uint64_t seed = cfg.run.seed;
  const int threads = cfg.data.decode_threads;
  const bool skip = cfg.data.on_corrupt == "skip";
  source.make_producer = [&dataset, seed, threads, skip](Ring& ring, const IndexSequence& indices) {
    return std::unique_ptr<Producer>(new RealProducer(dataset, ring, seed, indices, threads, skip));
  };
  source.describe = [&dataset, seed](uint64_t index) {
    const int64_t n = dataset.size();
    return dataset.describe(epoch_permutation(seed, index / uint64_t(n), n)[size_t(index % uint64_t(n))]);
  };
  return source;
}

}  // namespace synth
