#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "core/error.hpp"
#include "stream/batcher.hpp"

using synth::OrderedBatcher;
using synth::Ring;

namespace {

void publish(Ring& ring, uint64_t index) {
  auto s = ring.acquire_free();
  REQUIRE(s);
  ring.meta(*s).index = index;
  ring.publish(*s);
}

std::vector<uint64_t> indices_and_release(Ring& ring, const std::vector<int>& slots) {
  std::vector<uint64_t> out;
  for (int s : slots) {
    out.push_back(ring.meta(s).index);
    ring.release(s);
  }
  return out;
}

}  // namespace

TEST_CASE("batcher: out-of-order arrival gives in-order batches and a short last batch") {
  Ring ring(8, 1);
  OrderedBatcher batcher(ring, 3, 10, 17);
  for (uint64_t i : {12, 14, 10, 13, 11}) publish(ring, i);
  auto b1 = batcher.next();
  REQUIRE(b1);
  CHECK(indices_and_release(ring, *b1) == std::vector<uint64_t>{10, 11, 12});
  CHECK(batcher.held() == 2);  // 13 and 14 held aside
  for (uint64_t i : {16, 15}) publish(ring, i);
  auto b2 = batcher.next();
  REQUIRE(b2);
  CHECK(indices_and_release(ring, *b2) == std::vector<uint64_t>{13, 14, 15});
  auto b3 = batcher.next();
  REQUIRE(b3);
  CHECK(indices_and_release(ring, *b3) == std::vector<uint64_t>{16});
  CHECK_FALSE(batcher.next().has_value());
  CHECK(batcher.next_index() == 17);
}

TEST_CASE("batcher: threads publishing in any order still give identical batches") {
  Ring ring(4, 1);
  const uint64_t end = 2000;
  OrderedBatcher batcher(ring, 4, 0, end);
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < 3; ++t)
    producers.emplace_back([&] {
      for (;;) {
        auto s = ring.acquire_free();  // slot first, then the index: the batcher's contract
        if (!s) return;
        const uint64_t i = next.fetch_add(1);
        if (i >= end) {
          ring.discard(*s);
          return;
        }
        ring.meta(*s).index = i;
        ring.publish(*s);
      }
    });
  uint64_t expect = 0;
  while (auto b = batcher.next()) {
    for (uint64_t i : indices_and_release(ring, *b)) CHECK(i == expect++);
  }
  CHECK(expect == end);
  ring.close();
  for (auto& t : producers) t.join();
}

TEST_CASE("batcher: ring closed mid-batch is an error; closed between batches ends the stream") {
  Ring ring(4, 1);
  OrderedBatcher batcher(ring, 2, 0, 10);
  publish(ring, 0);
  publish(ring, 1);
  publish(ring, 3);
  auto b = batcher.next();
  REQUIRE(b);
  indices_and_release(ring, *b);
  ring.close();
  CHECK_THROWS_WITH_AS(batcher.next(), doctest::Contains("incomplete"), synth::Error);

  Ring ring2(4, 1);
  OrderedBatcher batcher2(ring2, 2, 0, 10);
  publish(ring2, 0);
  publish(ring2, 1);
  auto c = batcher2.next();
  REQUIRE(c);
  indices_and_release(ring2, *c);
  ring2.close();
  CHECK_FALSE(batcher2.next().has_value());
}

TEST_CASE("batcher: duplicate or out-of-range indices are protocol errors") {
  Ring ring(4, 1);
  OrderedBatcher batcher(ring, 2, 5, 9);
  publish(ring, 3);
  CHECK_THROWS_WITH_AS(batcher.next(), doctest::Contains("out of range"), synth::Error);
  Ring ring2(4, 1);
  OrderedBatcher batcher2(ring2, 3, 0, 9);
  publish(ring2, 1);
  publish(ring2, 1);
  CHECK_THROWS_WITH_AS(batcher2.next(), doctest::Contains("duplicate"), synth::Error);
}

TEST_CASE("batcher: ring.slots smaller than the batch is an InputError naming ring.slots") {
  Ring ring(3, 1);
  CHECK_THROWS_WITH_AS(OrderedBatcher(ring, 4, 0, 10), doctest::Contains("ring.slots"), synth::InputError);
  CHECK_THROWS_AS(OrderedBatcher(ring, 0, 0, 10), synth::InputError);
  CHECK_NOTHROW(OrderedBatcher(ring, 3, 0, 10));
}
