// OrderedBatcher: turns the ring's arrival order (which depends on thread timing) into batches of
// consecutive global indices [b, b + batch_size), so training is bit-for-bit deterministic
// whatever the number of producer threads or their speed.
//
// Deadlock freedom. Producers must acquire a free slot BEFORE claiming the next index from their
// shared atomic counter, and the caller must release the slots of a batch before asking for the
// next one. Suppose next() waits for index j of the current batch [b, e). If j has been claimed,
// its producer already owns a slot and will publish it. If j is unclaimed, every claimed index is
// below j (claims are handed out in order), so the batcher holds at most j - b < batch_size <= slots
// slots; some slot is therefore free, ready (the batcher will pop it) or being filled (it will be
// published), and the producer that claims j can get one. Hence `slots >= batch_size` suffices,
// and the constructor enforces it.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "stream/ring.hpp"
#include "stream/shard.hpp"

namespace synth {

class OrderedBatcher {
 public:
  // Batches cover [first_index, end_index); throws InputError naming ring.slots when the ring has
  // fewer slots than batch_size (see the deadlock argument above).
  OrderedBatcher(Ring& ring, int64_t batch_size, uint64_t first_index, uint64_t end_index);
  // One trainer rank's batches: step k is shard.step_range(k) (the same argument holds with the
  // rank's share of a step in place of batch_size: producers claim the shard's positions in order).
  OrderedBatcher(Ring& ring, const StreamShard& shard);

  // Slot ids of the next batch sorted by index; the caller reads then release()s them. The last
  // batch is short when end_index is reached. nullopt when the stream is done or the ring closed
  // with nothing of this batch pending; throws synth::Error when the ring closed mid-batch (a
  // producer failed) or an index outside the expected range arrives (protocol violation).
  std::optional<std::vector<int>> next();

  uint64_t next_index() const;                 // first index of the batch next() returns
  size_t held() const { return held_.size(); }  // slots of later indices held aside

 private:
  Ring& ring_;
  StreamShard shard_;
  uint64_t step_ = 0;
  std::map<uint64_t, int> held_;  // index -> slot, popped but not yet returned
};

}  // namespace synth
