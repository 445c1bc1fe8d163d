// The evaluator's decoder threads: every item of a job runs exactly once, jobs finish in order,
// and the error a job reports does not depend on which thread got there first.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eval/decode_pool.hpp"

TEST_CASE("decode pool: every item runs once; the lowest failing item's exception is reported") {
  synth::DecodePool pool(3);
  std::vector<std::atomic<int>> runs(1000);
  auto a = pool.run(600, [&](int64_t i) { runs[size_t(i)]++; });
  auto b = pool.run(400, [&](int64_t i) { runs[size_t(600 + i)]++; });
  a.get();
  b.get();
  for (const auto& r : runs) CHECK(r.load() == 1);
  pool.run(0, [](int64_t) { throw std::runtime_error("never called"); }).get();

  // Items 7 and 3 fail; 3 is reported whichever finishes first, and every other item still ran.
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> done{0};
    auto f = pool.run(50, [&](int64_t i) {
      if (i == 7) throw std::runtime_error("item 7");
      if (i == 3) {
        std::this_thread::sleep_for(std::chrono::microseconds(round * 50));
        throw std::runtime_error("item 3");
      }
      done++;
    });
    CHECK_THROWS_WITH(f.get(), "item 3");
    CHECK(done.load() == 48);
  }
  CHECK_THROWS(synth::DecodePool(0));
}

TEST_CASE("decode pool: destroying it with work queued stops cleanly") {
  std::atomic<int> ran{0};
  std::future<void> pending;
  {
    synth::DecodePool pool(2);
    pending = pool.run(1000, [&](int64_t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ran++;
    });
  }
  CHECK(ran.load() < 1000);
  CHECK_THROWS_AS(pending.get(), std::future_error);  // broken promise: the rest never ran
}
