#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "stream/ring.hpp"

using synth::Ring;

namespace {

// Publishes one slot carrying `index` (the slot's first byte holds its low 8 bits).
void push_index(Ring& ring, uint64_t index) {
  auto slot = ring.acquire_free();
  REQUIRE(slot.has_value());
  ring.meta(*slot).index = index;
  ring.data(*slot)[0] = uint8_t(index);
  ring.publish(*slot);
}

uint64_t pop_index(Ring& ring) {
  auto slot = ring.acquire_ready();
  REQUIRE(slot.has_value());
  const uint64_t index = ring.meta(*slot).index;
  CHECK(ring.data(*slot)[0] == uint8_t(index));
  ring.release(*slot);
  return index;
}

}  // namespace

TEST_CASE("ring: single thread is FIFO and stats count operations") {
  Ring ring(4, 16);
  CHECK(ring.slots() == 4);
  CHECK(ring.slot_bytes() == 16);
  for (uint64_t i = 0; i < 3; ++i) push_index(ring, i);
  CHECK(ring.ready_count() == 3);
  for (uint64_t i = 0; i < 3; ++i) CHECK(pop_index(ring) == i);
  CHECK(ring.ready_count() == 0);
  // Cycling through more items than slots reuses slots without losing order.
  for (uint64_t i = 10; i < 30; ++i) {
    push_index(ring, i);
    CHECK(pop_index(ring) == i);
  }
  const auto st = ring.stats();
  CHECK(st.pushed == 23);
  CHECK(st.popped == 23);
}

TEST_CASE("ring: all slots distinct and a full ring has no free slot until a release") {
  Ring ring(3, 1);
  std::set<int> ids;
  for (int i = 0; i < 3; ++i) {
    auto s = ring.acquire_free();
    REQUIRE(s);
    ids.insert(*s);
    ring.meta(*s).index = uint64_t(i);
    ring.data(*s)[0] = uint8_t(i);
    ring.publish(*s);
  }
  CHECK(ids == std::set<int>{0, 1, 2});
  // A producer now blocks (back-pressure) until the consumer releases a slot.
  std::atomic<bool> got{false};
  std::thread producer([&] {
    auto s = ring.acquire_free();
    REQUIRE(s);
    got = true;
    ring.meta(*s).index = 3;
    ring.data(*s)[0] = 3;
    ring.publish(*s);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(got.load());
  CHECK(pop_index(ring) == 0);
  producer.join();
  CHECK(got.load());
  CHECK(pop_index(ring) == 1);
  CHECK(pop_index(ring) == 2);
  CHECK(pop_index(ring) == 3);
}

TEST_CASE("ring: close wakes a blocked consumer and a blocked producer") {
  Ring ring(1, 1);
  std::optional<int> consumer_result = 42;
  std::thread consumer([&] { consumer_result = ring.acquire_ready(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ring.close();
  consumer.join();
  CHECK_FALSE(consumer_result.has_value());
  // The blocked time is accounted to the side that blocked (the thread blocks within the first
  // ~50 ms of the 100 ms, even on a loaded machine).
  CHECK(ring.stats().consumer_wait_s >= 0.05);
  CHECK(ring.stats().producer_wait_s == 0.0);

  Ring full(1, 1);
  auto s = full.acquire_free();
  REQUIRE(s);
  full.meta(*s).index = 0;
  full.data(*s)[0] = 0;
  full.publish(*s);
  std::optional<int> producer_result = 42;
  std::thread producer([&] { producer_result = full.acquire_free(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  full.close();
  producer.join();
  CHECK_FALSE(producer_result.has_value());
  // Producers get nullopt at once after close, even with a free slot.
  CHECK(full.closed());
  CHECK(pop_index(full) == 0);
  CHECK_FALSE(full.acquire_free().has_value());
  CHECK(full.stats().producer_wait_s >= 0.05);
  CHECK(full.stats().consumer_wait_s == 0.0);  // the one image was there: no consumer waited
}

TEST_CASE("ring: consumers drain everything published before and around close") {
  Ring ring(8, 4);
  for (uint64_t i = 0; i < 5; ++i) push_index(ring, i);
  // A producer that took a slot before close() publishes after it; consumers still get it.
  auto late = ring.acquire_free();
  REQUIRE(late);
  ring.close();
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    ring.meta(*late).index = 5;
    ring.data(*late)[0] = 5;
    ring.publish(*late);
  });
  std::set<uint64_t> seen;
  while (auto s = ring.acquire_ready()) {
    seen.insert(ring.meta(*s).index);
    ring.release(*s);
  }
  producer.join();
  CHECK(seen == std::set<uint64_t>{0, 1, 2, 3, 4, 5});
  CHECK_FALSE(ring.acquire_ready().has_value());
}

TEST_CASE("ring: a discarded slot returns to the free list and ends the drain") {
  Ring ring(2, 1);
  auto a = ring.acquire_free();
  REQUIRE(a);
  ring.close();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ring.discard(*a);
  });
  CHECK_FALSE(ring.acquire_ready().has_value());
  t.join();
}

TEST_CASE("ring: bad sizes and slot ids are errors, not crashes") {
  CHECK_THROWS_AS(Ring(0, 16), synth::InputError);
  CHECK_THROWS_WITH_AS(Ring(size_t(1) << 21, 1), doctest::Contains("ring.slots"), synth::InputError);
  CHECK_THROWS_WITH_AS(Ring(1024, size_t(1) << 30), doctest::Contains("ring.max_height"), synth::InputError);
  Ring ring(2, 1);
  CHECK_THROWS_AS(ring.publish(2), synth::Error);
  CHECK_THROWS_AS(ring.release(-1), synth::Error);
  CHECK_THROWS_AS(ring.meta(5), synth::Error);
}
