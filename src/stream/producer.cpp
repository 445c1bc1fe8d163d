#include "stream/producer.hpp"

#include "core/error.hpp"

namespace synth {

ProducerThreads::~ProducerThreads() {
  bool live = false;
  for (const std::thread& t : workers_) live = live || t.joinable();
  if (live) {
    ring_.close();
    for (std::thread& t : workers_)
      if (t.joinable()) t.join();
  }
}

void ProducerThreads::start(int n, const std::function<void(int)>& body) {
  if (!workers_.empty()) throw Error("producer started twice");
  running_ = n;
  for (int w = 0; w < n; ++w)
    workers_.emplace_back([this, body, w] {
      try {
        body(w);
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          if (!error_) error_ = std::current_exception();
        }
        ring_.close();
      }
      if (running_.fetch_sub(1) == 1) ring_.close();
    });
}

void ProducerThreads::join() {
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace synth
