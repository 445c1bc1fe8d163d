// Stress: 4 producers x 4 consumers push SYNTH_STRESS_ITEMS indices (default 1,000,000) through
// a small ring with CounterRng-driven pauses; the ledger must show every index exactly once and
// every slot must carry the bytes its producer wrote. The ThreadSanitizer CI build runs this too.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/rng.hpp"
#include "stream/ledger.hpp"
#include "stream/ring.hpp"

using synth::CounterRng;
using synth::RngPurpose;

namespace {

uint64_t stress_items() {
  const char* env = std::getenv("SYNTH_STRESS_ITEMS");
  if (env == nullptr || *env == '\0') return 1000000;
  return std::strtoull(env, nullptr, 10);
}

// About one operation in 256 pauses: mostly a yield, sometimes a sleep of up to 50 us, so both
// the spin path and the condition-variable path of the ring are exercised.
void maybe_pause(uint64_t index, uint32_t side) {
  CounterRng rng(2023, index, RngPurpose::kNoise, side);
  const uint32_t r = rng.next_u32();
  if ((r & 0xFF) != 0) return;
  if ((r >> 8) & 1) std::this_thread::yield();
  else std::this_thread::sleep_for(std::chrono::microseconds((r >> 9) % 50));
}

}  // namespace

// ThreadSanitizer cannot see the ABA-tagged-pointer protocol of Boost.Lockfree's queue and node
// freelist: the Michael-Scott pop reads a node's payload before its CAS validates it, and the
// freelist rewrites `next` of a node other threads may still read. Both are benign by design, so
// reports whose stacks lie inside boost::lockfree are suppressed; races in the ring's own slot
// storage and metadata (no Boost frames) are still reported. Only a TSan runtime calls this hook.
extern "C" const char* __tsan_default_suppressions() { return "race:boost::lockfree::\n"; }

TEST_CASE("stress: 4 producers x 4 consumers, every index exactly once") {
  const uint64_t items = stress_items();
  constexpr size_t kSlotBytes = 64;
  synth::Ring ring(16, kSlotBytes);
  std::atomic<uint64_t> next{0};
  std::atomic<int> producers_left{4};
  std::atomic<uint64_t> corrupt{0};
  std::vector<std::vector<uint64_t>> seen(4);

  std::vector<std::thread> threads;
  for (int p = 0; p < 4; ++p)
    threads.emplace_back([&] {
      for (;;) {
        auto slot = ring.acquire_free();
        if (!slot) break;
        const uint64_t i = next.fetch_add(1);
        if (i >= items) {
          ring.discard(*slot);
          break;
        }
        maybe_pause(i, 0);
        uint8_t* d = ring.data(*slot);
        for (size_t k = 0; k < kSlotBytes; k += sizeof i) std::memcpy(d + k, &i, sizeof i);
        ring.meta(*slot).index = i;
        ring.publish(*slot);
      }
      if (producers_left.fetch_sub(1) == 1) ring.close();
    });
  for (int c = 0; c < 4; ++c)
    threads.emplace_back([&, c] {
      std::vector<uint64_t>& mine = seen[size_t(c)];
      mine.reserve(size_t(items / 3));
      while (auto slot = ring.acquire_ready()) {
        const uint64_t i = ring.meta(*slot).index;
        const uint8_t* d = ring.data(*slot);
        for (size_t k = 0; k < kSlotBytes; k += sizeof i) {
          uint64_t v;
          std::memcpy(&v, d + k, sizeof v);
          if (v != i) corrupt.fetch_add(1);
        }
        maybe_pause(i, 1);
        mine.push_back(i);
        ring.release(*slot);
      }
    });
  for (auto& t : threads) t.join();

  synth::Ledger ledger;
  size_t per_consumer_min = SIZE_MAX;
  for (const auto& v : seen) {
    per_consumer_min = std::min(per_consumer_min, v.size());
    for (uint64_t i : v) ledger.record(i);
  }
  const auto st = ring.stats();
  MESSAGE("items " << items << ", min per consumer " << per_consumer_min << ", producer wait " << st.producer_wait_s
                   << " s, consumer wait " << st.consumer_wait_s << " s");
  CHECK(corrupt.load() == 0);
  CHECK(ledger.duplicates() == 0);
  CHECK(ledger.gap_count(items) == 0);
  CHECK(ledger.exactly_once(items));
  CHECK(st.pushed == items);
  CHECK(st.popped == items);
  CHECK(ring.ready_count() == 0);
}
