#include "eval/decode_pool.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace synth {

struct DecodePool::Job {
  std::function<void(int64_t)> item;
  int64_t n = 0;
  int64_t next = 0;  // next unclaimed item, guarded by the pool's mutex
  std::mutex mutex;  // guards the fields below
  int64_t finished = 0;
  int64_t error_item = -1;
  std::exception_ptr error;
  std::promise<void> done;
};

DecodePool::DecodePool(int threads) {
  if (threads < 1) throw Error("DecodePool: need at least one thread, got " + std::to_string(threads));
  threads_.reserve(size_t(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

DecodePool::~DecodePool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::future<void> DecodePool::run(int64_t n, std::function<void(int64_t)> item) {
  auto job = std::make_shared<Job>();
  job->item = std::move(item);
  job->n = n;
  std::future<void> done = job->done.get_future();
  if (n <= 0) {
    job->done.set_value();
    return done;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_all();
  return done;
}

void DecodePool::work() {
  while (true) {
    std::shared_ptr<Job> job;
    int64_t i = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = queue_.front();
      i = job->next++;
      if (job->next == job->n) queue_.pop_front();
    }
    std::exception_ptr error;
    try {
      job->item(i);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(job->mutex);
    if (error && (job->error_item < 0 || i < job->error_item)) {
      job->error = error;
      job->error_item = i;
    }
    if (++job->finished == job->n) {
      if (job->error)
        job->done.set_exception(job->error);
      else
        job->done.set_value();
    }
  }
}

}  // namespace synth
