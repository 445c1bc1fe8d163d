// The evaluator's decoder threads (eval.decode_threads): a batch of images is one job whose items
// (image positions) the threads claim one at a time, so a slow JPEG never holds up the others.
// Jobs run in submission order; the evaluator submits batch b+1 before it runs the classifier on
// batch b, so decoding overlaps the forward pass. The threads are plain std::threads, not
// LibTorch's intra-op pool, which the classifier keeps to itself.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace synth {

class DecodePool {
 public:
  explicit DecodePool(int threads);
  // Stops after the items being run; items not started are dropped (their futures report
  // broken_promise to anyone still waiting). Whatever a job's items write to must outlive the
  // pool or be owned by the job function.
  ~DecodePool();
  DecodePool(const DecodePool&) = delete;
  DecodePool& operator=(const DecodePool&) = delete;

  // Queues item(i) for every i in [0, n). The future becomes ready once all n have run; when items
  // threw, it holds the exception of the lowest such i (so the error does not depend on timing).
  std::future<void> run(int64_t n, std::function<void(int64_t)> item);

 private:
  struct Job;
  void work();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;  // jobs with items not yet claimed, oldest first
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace synth
