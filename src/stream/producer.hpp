// What fills the ring: real-image decoders (data/) and Stable Diffusion generators
// (generate/generator.hpp) behind one interface, so the trainer is the same for both.
//
// Contract for implementations (the OrderedBatcher's deadlock-freedom argument relies on it):
// acquire a free slot BEFORE claiming the stream index it will hold; claim the positions of its
// IndexSequence in increasing order from one shared counter; publish every claimed index exactly
// once or fail (close the ring and remember the error for join()).
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "stream/ring.hpp"
#include "stream/shard.hpp"

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

// The thread bookkeeping every producer shares. start() runs body(worker) on n threads; an
// exception escaping a body is kept (the first one) and closes the ring so consumers wake; the
// last worker out closes the ring so consumers see the end of the stream; join() waits and
// rethrows the kept error. The destructor closes the ring and joins, so an exception on the
// consumer side never leaks threads: declare this member last, so it goes first.
class ProducerThreads {
 public:
  explicit ProducerThreads(Ring& ring) : ring_(ring) {}
  ~ProducerThreads();
  ProducerThreads(const ProducerThreads&) = delete;
  ProducerThreads& operator=(const ProducerThreads&) = delete;

  void start(int n, const std::function<void(int worker)>& body);
  void join();

 private:
  Ring& ring_;
  std::vector<std::thread> workers_;
  std::atomic<int> running_{0};
  std::mutex mutex_;
  std::exception_ptr error_;
};

// A training image source as the trainer sees it: how many classes its labels span, a name for
// logs, and a factory for producers of a sequence of stream indices (a trainer rank's shard) into a ring.
struct ImageSource {
  std::string name;
  int num_classes = 0;
  SourceTag tag = SourceTag::kReal;
  std::function<std::unique_ptr<Producer>(Ring& ring, const IndexSequence& indices)> make_producer;
  // What stream image `index` is, for sample sheets: its prompt, or its file (empty: unknown).
  std::function<std::string(uint64_t index)> describe;
};

}  // namespace synth
