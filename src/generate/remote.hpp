// Dedicated placement: generator ranks make the images and send them to trainer ranks, which
// only train (dist.trainer_ranks = T < world size; ranks [0, T) train, ranks [T, W) generate).
//
// Assignment. Trainer t trains on its StreamShard; it is fed by the G_t generator ranks
// j = t, t + T, t + 2T, ... (G >= T, so each trainer has at least one). Its positions are dealt in
// chunks of generator.batch_size (one sampler call): chunk k goes to its (k mod G_t)-th generator.
// Every index is thus made by exactly one generator and trained by exactly one trainer.
//
// Transfer. Per image, over the world group (Gloo, host memory): a header {index, label, height,
// width, channels} (int64) then the uint8 pixels, tagged by the trainer position so messages can
// never pair up wrongly. The trainer's receiver takes a ring slot before it asks for the next
// position (the ring contract) and receives the pixels straight into the slot; a generator sends
// its images in position order from its own ring, so its threads may finish in any order.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>

#include "config/config.hpp"
#include "distributed/comm.hpp"
#include "stream/producer.hpp"
#include "stream/ring.hpp"
#include "stream/shard.hpp"

namespace synth {

// The generator ranks feeding trainer t of T among G, and which of them makes a position.
struct FeedPlan {
  int trainers = 1, generators = 1, trainer = 0;
  int64_t chunk = 1;  // positions per sampler call
  int feeders() const { return (generators - trainer + trainers - 1) / trainers; }  // G_t
  int feeder_of(uint64_t position) const { return int((position / uint64_t(chunk)) % uint64_t(feeders())); }
  int world_rank_of_feeder(int m) const { return trainers + trainer + trainers * m; }
  // The positions of the trainer's shard that feeder m makes, in order.
  IndexSequence positions_of(int m, uint64_t shard_positions) const;
};

// Trainer side: receives its shard's images from the generator ranks into the ring.
class RemoteProducer final : public Producer {
 public:
  RemoteProducer(Comm& world, Ring& ring, const StreamShard& shard, const FeedPlan& plan);
  void start() override;
  void join() override;
  uint64_t produced() const override { return produced_.load(); }

 private:
  void run();
  Comm& world_;
  Ring& ring_;
  StreamShard shard_;
  FeedPlan plan_;
  std::atomic<uint64_t> produced_{0};
  ProducerThreads threads_;  // last: joined before the members its threads use are destroyed
};

// Generator side: makes (with `source`'s producers into a ring of its own) and sends every image
// of the trainer shard part this generator rank owns. Returns the number of images sent.
uint64_t serve_trainer(const Config& cfg, const ImageSource& source, Comm& world, const StreamShard& trainer_shard,
                       const FeedPlan& plan, int feeder);

// Message tags: two per position (header, pixels), positions folded into Gloo's tag range.
inline int header_tag(uint64_t position) { return int((position % (uint64_t(1) << 29)) * 2); }

}  // namespace synth
