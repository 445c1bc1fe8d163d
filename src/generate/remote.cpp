#include "generate/remote.hpp"

#include <map>
#include <string>

#include <torch/torch.h>

#include "core/error.hpp"

namespace synth {

IndexSequence FeedPlan::positions_of(int m, uint64_t shard_positions) const {
  // Position p belongs to feeder (p / chunk) mod G_t: feeder m owns chunks m, m + G_t, ...
  const uint64_t c = uint64_t(chunk), g = uint64_t(feeders()), full_chunks = shard_positions / c, rest = shard_positions % c;
  uint64_t size = (full_chunks / g + (full_chunks % g > uint64_t(m) ? 1 : 0)) * c;
  if (rest && full_chunks % g == uint64_t(m)) size += rest;
  IndexSequence s;
  s.size = size;
  s.at = [c, g, m](uint64_t q) { return ((q / c) * g + uint64_t(m)) * c + q % c; };
  return s;
}

RemoteProducer::RemoteProducer(Comm& world, Ring& ring, const StreamShard& shard, const FeedPlan& plan)
    : world_(world), ring_(ring), shard_(shard), plan_(plan), threads_(ring) {}

void RemoteProducer::start() {
  threads_.start(1, [this](int) { run(); });
}

void RemoteProducer::join() { threads_.join(); }

void RemoteProducer::run() {
  for (uint64_t p = 0; p < shard_.positions(); ++p) {
    const std::optional<int> slot = ring_.acquire_free();
    if (!slot) return;  // the trainer stopped
    try {
      const int src = plan_.world_rank_of_feeder(plan_.feeder_of(p));
      torch::Tensor header = torch::zeros({5}, torch::kInt64);
      world_.recv(header, src, header_tag(p));
      const int64_t* h = header.data_ptr<int64_t>();
      const uint64_t expected = shard_.index(p);
      if (uint64_t(h[0]) != expected)
        throw Error("generator rank " + std::to_string(src) + " sent image " + std::to_string(h[0]) + " for position " +
                    std::to_string(p) + ", which is image " + std::to_string(expected));
      const int64_t bytes = h[2] * h[3] * h[4];
      if (h[4] != 3 || bytes <= 0 || size_t(bytes) > ring_.slot_bytes())
        throw Error("generator rank " + std::to_string(src) + " sent a " + std::to_string(h[2]) + "x" + std::to_string(h[3]) +
                    "x" + std::to_string(h[4]) + " image; a ring slot holds " + std::to_string(ring_.slot_bytes()) + " bytes");
      torch::Tensor pixels = torch::from_blob(ring_.data(*slot), {bytes}, torch::kUInt8);
      world_.recv(pixels, src, header_tag(p) + 1);
      SlotMeta& m = ring_.meta(*slot);
      m.index = expected;
      m.label = int32_t(h[1]);
      m.source = SourceTag::kSynthetic;
      m.height = int32_t(h[2]);
      m.width = int32_t(h[3]);
      m.channels = 3;
    } catch (...) {
      ring_.discard(*slot);
      throw;
    }
    ring_.publish(*slot);
    produced_.fetch_add(1);
  }
}

uint64_t serve_trainer(const Config& cfg, const ImageSource& source, Comm& world, const StreamShard& trainer_shard,
                       const FeedPlan& plan, int feeder) {
  const IndexSequence positions = plan.positions_of(feeder, trainer_shard.positions());
  IndexSequence indices;
  indices.size = positions.size;
  indices.at = [positions, trainer_shard](uint64_t q) { return trainer_shard.index(positions.at(q)); };
  Ring ring(size_t(cfg.ring.slots), size_t(cfg.ring.max_height) * size_t(cfg.ring.max_width) * 3);
  const std::unique_ptr<Producer> producer = source.make_producer(ring, indices);
  producer->start();
  // Send in sequence order; images that come early wait in their slots (the producers claim in
  // order, so the next one to send always owns a slot and will arrive).
  std::map<uint64_t, int> held;  // index -> slot
  uint64_t q = 0;
  try {
    while (q < indices.size) {
      const uint64_t want = indices.at(q);
      auto it = held.find(want);
      if (it == held.end()) {
        const std::optional<int> slot = ring.acquire_ready();
        if (!slot) break;  // a producer failed: join() below reports why
        held.emplace(ring.meta(*slot).index, *slot);
        continue;
      }
      const int slot = it->second;
      const SlotMeta& m = ring.meta(slot);
      const int64_t bytes = int64_t(m.height) * m.width * m.channels;
      const int dst = plan.trainer;  // trainer ranks are world ranks [0, T)
      world.send(torch::tensor({int64_t(m.index), int64_t(m.label), int64_t(m.height), int64_t(m.width), int64_t(m.channels)},
                               torch::kInt64),
                 dst, header_tag(positions.at(q)));
      world.send(torch::from_blob(ring.data(slot), {bytes}, torch::kUInt8), dst, header_tag(positions.at(q)) + 1);
      ring.release(slot);
      held.erase(it);
      ++q;
    }
  } catch (...) {
    ring.close();
    producer->join();  // the producer's own error, if any, is the cause
    throw;
  }
  ring.close();
  producer->join();
  if (q < indices.size)
    throw Error("generator stopped after " + std::to_string(q) + " of its " + std::to_string(indices.size) + " images");
  return q;
}

}  // namespace synth
