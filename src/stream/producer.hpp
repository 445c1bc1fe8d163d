// What fills the ring: real-image decoders (sources/) and Stable Diffusion generators
// (sources/generator.hpp) behind one interface, so the trainer is the same for both.
//
// Contract for implementations (the OrderedBatcher's deadlock-freedom argument relies on it):
// acquire a free slot BEFORE claiming the stream index it will hold; claim indices in increasing
// order from one shared counter over [first, end); publish every claimed index exactly once or
// fail (close the ring and remember the error for join()).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "stream/ring.hpp"

namespace synth {

class Producer {
 public:
  virtual ~Producer() = default;  // implementations close the ring and join their threads
  virtual void start() = 0;
  // Waits for every thread; rethrows the first error one of them hit.
  virtual void join() = 0;
  virtual uint64_t produced() const = 0;  // images published so far
  virtual uint64_t skipped() const { return 0; }  // unreadable items replaced (real sources)
};

// A training image source as the trainer sees it: how many classes its labels span, a name for
// logs, and a factory for producers of stream indices [first, end) into a ring.
struct ImageSource {
  std::string name;
  int num_classes = 0;
  SourceTag tag = SourceTag::kReal;
  std::function<std::unique_ptr<Producer>(Ring& ring, uint64_t first, uint64_t end)> make_producer;
  // What stream image `index` is, for sample sheets: its prompt, or its file (empty: unknown).
  std::function<std::string(uint64_t index)> describe;
};

}  // namespace synth
