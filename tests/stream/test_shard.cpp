#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "stream/batcher.hpp"
#include "stream/ring.hpp"
#include "stream/shard.hpp"

using synth::IndexSequence;
using synth::StreamShard;

TEST_CASE("shard: T ranks partition every global batch into contiguous parts, in order") {
  struct Case {
    uint64_t origin, end;
    int64_t batch;
    int ranks;
  };
  for (const Case c : {Case{0, 100, 10, 1}, Case{0, 100, 10, 3}, Case{20, 107, 10, 4}, Case{0, 1000, 256, 8},
                       Case{512, 1000, 256, 5}, Case{0, 7, 8, 2}, Case{30, 30, 4, 2}}) {
    CAPTURE(c.origin);
    CAPTURE(c.end);
    CAPTURE(c.ranks);
    std::vector<int> owner(c.end, -1);
    uint64_t total = 0;
    for (int r = 0; r < c.ranks; ++r) {
      const StreamShard s(c.origin, c.end, c.batch, r, c.ranks);
      const IndexSequence seq = IndexSequence::of(s);
      REQUIRE(seq.size == s.positions());
      for (uint64_t p = 0; p < seq.size; ++p) {
        const uint64_t g = seq.at(p);
        if (p > 0) CHECK(g > seq.at(p - 1));
        REQUIRE(g >= c.origin);
        REQUIRE(g < c.end);
        CHECK(owner[g] == -1);
        owner[g] = r;
        CHECK(s.owns(g));
      }
      total += seq.size;
      // Step k of this rank lies inside global step k and its parts are what positions enumerate.
      uint64_t p = 0;
      for (uint64_t k = 0; k < s.steps(); ++k) {
        const auto [b, e] = s.step_range(k);
        CHECK(b >= c.origin + k * uint64_t(c.batch));
        CHECK(e <= c.origin + (k + 1) * uint64_t(c.batch));
        CHECK(e > b);  // no rank is ever left without images
        for (uint64_t g = b; g < e; ++g) CHECK(seq.at(p++) == g);
      }
      CHECK(p == seq.size);
    }
    CHECK(total == c.end - c.origin);
    for (uint64_t g = c.origin; g < c.end; ++g) CHECK(owner[g] >= 0);
  }
}

TEST_CASE("shard: one rank is the whole range; the global batches do not depend on the rank count") {
  const StreamShard whole = StreamShard::whole(5, 17, 4);
  CHECK(whole.positions() == 12);
  CHECK(whole.index(0) == 5);
  CHECK(whole.index(11) == 16);
  CHECK(whole.step_range(2) == std::pair<uint64_t, uint64_t>{13, 17});
  // Step 1 of a 3-rank run is global images [4, 8) of a one-rank run, split 1 / 1 / 2.
  CHECK(StreamShard(0, 12, 4, 0, 3).step_range(1) == std::pair<uint64_t, uint64_t>{4, 5});
  CHECK(StreamShard(0, 12, 4, 1, 3).step_range(1) == std::pair<uint64_t, uint64_t>{5, 6});
  CHECK(StreamShard(0, 12, 4, 2, 3).step_range(1) == std::pair<uint64_t, uint64_t>{6, 8});
}

TEST_CASE("shard: bad splits are input errors") {
  CHECK_THROWS_WITH_AS(StreamShard(0, 10, 8, 0, 3), doctest::Contains("last step has 2 images"), synth::InputError);
  CHECK_THROWS_AS(StreamShard(0, 10, 2, 0, 3), synth::InputError);  // batch smaller than the ranks
  CHECK_THROWS_AS(StreamShard(0, 10, 4, 2, 2), synth::InputError);
  CHECK_THROWS_AS(StreamShard(0, 10, 0, 0, 1), synth::InputError);
  CHECK_THROWS_AS(StreamShard(11, 10, 4, 0, 1), synth::InputError);
}

TEST_CASE("shard: a rank's batcher assembles its parts from producer threads publishing in any order") {
  const StreamShard shard(0, 1003, 16, 1, 3);
  const IndexSequence seq = IndexSequence::of(shard);
  synth::Ring ring(6, 1);  // the rank's share of a step is 5 or 6 images
  synth::OrderedBatcher batcher(ring, shard);
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < 3; ++t)
    producers.emplace_back([&] {
      for (;;) {
        auto s = ring.acquire_free();  // slot first, then the position
        if (!s) return;
        const uint64_t p = next.fetch_add(1);
        if (p >= seq.size) {
          ring.discard(*s);
          return;
        }
        ring.meta(*s).index = seq.at(p);
        ring.publish(*s);
      }
    });
  std::vector<uint64_t> got;
  uint64_t steps = 0;
  while (auto b = batcher.next()) {
    const auto [lo, hi] = shard.step_range(steps++);
    REQUIRE(b->size() == hi - lo);
    for (size_t i = 0; i < b->size(); ++i) {
      CHECK(ring.meta((*b)[i]).index == lo + i);
      got.push_back(ring.meta((*b)[i]).index);
      ring.release((*b)[i]);
    }
  }
  ring.close();
  for (std::thread& t : producers) t.join();
  CHECK(steps == shard.steps());
  CHECK(got.size() == seq.size);
}

TEST_CASE("shard: an index of another rank is a protocol error in the batcher") {
  const StreamShard shard(0, 40, 8, 0, 2);  // rank 0 owns [0,4), [8,12), ...
  synth::Ring ring(8, 1);
  synth::OrderedBatcher batcher(ring, shard);
  auto s = ring.acquire_free();
  ring.meta(*s).index = 5;  // rank 1's
  ring.publish(*s);
  CHECK_THROWS_WITH_AS(batcher.next(), doctest::Contains("out of range"), synth::Error);
}
