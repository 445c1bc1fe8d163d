#include "data/batch_stream.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/real_source.hpp"
#include "generate/generator.hpp"
#include "stream/batcher.hpp"
#include "stream/ring.hpp"
#include "stream/shard.hpp"

namespace synth {

// Declaration order is teardown order reversed: the producer goes first (it closes the ring and
// joins its threads), then the batcher and the ring it reads, then the source and its dataset.
TrainingSource open_training_source(const Config& cfg, bool load_models) {
  TrainingSource t;
  if (cfg.data.source == "synthetic") {
    t.source = synthetic_image_source(cfg, load_models);
  } else {
    t.dataset = open_train_dataset(cfg);
    t.source = real_image_source(cfg, *t.dataset);
  }
  return t;
}

struct BatchStream::Impl {
  std::shared_ptr<const TrainingSource> opened;
  std::unique_ptr<Ring> ring;
  std::unique_ptr<StreamShard> shard;
  std::unique_ptr<OrderedBatcher> batcher;
  std::unique_ptr<Producer> producer;
  uint64_t end = 0;
  int64_t batch = 0;
  bool started = false;
};

BatchStream::BatchStream(const Config& cfg, int rank, int ranks, StreamState state)
    : BatchStream(std::make_shared<const TrainingSource>(open_training_source(cfg)), cfg, rank, ranks, std::move(state)) {}

BatchStream::BatchStream(std::shared_ptr<const TrainingSource> source, const Config& cfg, int rank, int ranks,
                         StreamState state)
    : impl_(std::make_unique<Impl>()), position_(state.position), ledger_(std::move(state.ledger)) {
  Impl& s = *impl_;
  s.end = uint64_t(cfg.train.total_images);
  s.batch = cfg.train.batch_size;
  if (ranks < 1 || rank < 0 || rank >= ranks)
    throw InputError("stream: rank " + std::to_string(rank) + " of " + std::to_string(ranks) + " trainer ranks");
  if (position_ > s.end || position_ % uint64_t(s.batch) != 0)
    throw InputError("stream: resume position " + std::to_string(position_) +
                     " is not a step boundary of train.batch_size = " + std::to_string(s.batch) +
                     " within train.total_images = " + std::to_string(s.end));
  if (!source) throw Error("stream: no training source");
  s.opened = std::move(source);
  if (position_ == s.end) return;
  s.ring = std::make_unique<Ring>(size_t(cfg.ring.slots), size_t(cfg.ring.max_height) * size_t(cfg.ring.max_width) * 3);
  s.shard = std::make_unique<StreamShard>(position_, s.end, s.batch, rank, ranks);
  s.batcher = std::make_unique<OrderedBatcher>(*s.ring, *s.shard);
  s.producer = s.opened->source.make_producer(*s.ring, IndexSequence::of(*s.shard));
}

BatchStream::~BatchStream() = default;

uint64_t BatchStream::end() const { return impl_->end; }
const ImageSource& BatchStream::source() const { return impl_->opened->source; }

std::optional<StreamBatch> BatchStream::next() {
  Impl& s = *impl_;
  if (position_ >= s.end) return std::nullopt;
  if (!s.started) {
    s.producer->start();
    s.started = true;
  }
  std::optional<std::vector<int>> slots;
  try {
    slots = s.batcher->next();
  } catch (...) {
    // A producer error closes the ring mid-batch: report the producer's cause, not the symptom.
    s.ring->close();
    s.producer->join();
    throw;
  }
  if (!slots) {
    s.producer->join();
    throw Error("stream: the producers ended at image " + std::to_string(position_) + " of " + std::to_string(s.end));
  }
  Ring& ring = *s.ring;
  const SlotMeta& first = ring.meta(slots->front());
  const int64_t n = int64_t(slots->size()), h = first.height, w = first.width, c = first.channels;
  StreamBatch b{torch::empty({n, c, h, w}, torch::kUInt8), torch::empty({n}, torch::kInt64),
                torch::empty({n}, torch::kInt64)};
  try {
    for (int64_t i = 0; i < n; ++i) {
      const int slot = (*slots)[size_t(i)];
      const SlotMeta& m = ring.meta(slot);
      if (m.height != h || m.width != w || m.channels != c)
        throw InputError("stream: image " + std::to_string(m.index) + " is " + std::to_string(m.height) + "x" +
                         std::to_string(m.width) + "x" + std::to_string(m.channels) + ", image " +
                         std::to_string(first.index) + " of the same batch " + std::to_string(h) + "x" +
                         std::to_string(w) + "x" + std::to_string(c) +
                         ": batches of uint8 images need one size (crop them with dino_crops)");
      // The ring holds HWC; the batch is NCHW as torchvision models take it.
      b.images[i].copy_(torch::from_blob(ring.data(slot), {h, w, c}, torch::kUInt8).permute({2, 0, 1}));
      b.labels[i] = int64_t(m.label);
      b.indices[i] = int64_t(m.index);
    }
  } catch (...) {
    for (int slot : *slots) ring.release(slot);
    throw;
  }
  for (int slot : *slots) {
    ledger_.record(ring.meta(slot).index);
    ring.release(slot);
  }
  position_ += std::min<uint64_t>(uint64_t(s.batch), s.end - position_);
  if (position_ == s.end) s.producer->join();  // rethrows a late producer error, if any
  return b;
}

}  // namespace synth
