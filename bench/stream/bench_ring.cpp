// Ring throughput: items per second through acquire_free/publish/acquire_ready/release for 1x1
// and 4x4 producer/consumer threads, with empty slots (pure queue + wake-up cost) and 64 KiB
// slots that both sides copy (a decoded ~150x150 RGB image). Prints figures; asserts nothing.
// Usage: bench_ring [items] [slots]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "stream/ring.hpp"

namespace {

struct Result {
  double seconds;
  synth::RingStats stats;
};

Result run(int producers, int consumers, size_t slot_bytes, uint64_t items, size_t slots) {
  synth::Ring ring(slots, slot_bytes);
  std::atomic<uint64_t> next{0};
  std::atomic<int> left{producers};
  std::atomic<uint64_t> checksum{0};
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&] {
      std::vector<uint8_t> src(slot_bytes, 0x5A);
      for (;;) {
        auto s = ring.acquire_free();
        if (!s) break;
        const uint64_t i = next.fetch_add(1);
        if (i >= items) {
          ring.discard(*s);
          break;
        }
        if (slot_bytes) std::memcpy(ring.data(*s), src.data(), slot_bytes);
        ring.meta(*s).index = i;
        ring.publish(*s);
      }
      if (left.fetch_sub(1) == 1) ring.close();
    });
  for (int c = 0; c < consumers; ++c)
    threads.emplace_back([&] {
      std::vector<uint8_t> dst(slot_bytes);
      uint64_t sum = 0;
      while (auto s = ring.acquire_ready()) {
        if (slot_bytes) {
          std::memcpy(dst.data(), ring.data(*s), slot_bytes);
          sum += dst[slot_bytes / 2];
        }
        sum += ring.meta(*s).index;
        ring.release(*s);
      }
      checksum.fetch_add(sum);
    });
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {secs, ring.stats()};
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t items = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000000;
  const size_t slots = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  std::printf("bench_ring: %llu items, %zu slots, %u hardware threads\n", (unsigned long long)items, slots,
              std::thread::hardware_concurrency());
  std::printf("%-8s %10s %14s %10s %16s %16s\n", "threads", "slot", "items/s", "GB/s", "producer wait s", "consumer wait s");
  for (size_t bytes : {size_t(0), size_t(64) << 10}) {
    for (int t : {1, 4}) {
      // 64 KiB copies are ~1000x slower per item; fewer items keep the run short.
      const uint64_t n = bytes ? std::max<uint64_t>(items / 20, 1000) : items;
      const Result r = run(t, t, bytes, n, slots);
      const double rate = double(n) / r.seconds;
      std::printf("%dx%-6d %10zu %14.0f %10.2f %16.3f %16.3f\n", t, t, bytes, rate, rate * double(bytes) / 1e9,
                  r.stats.producer_wait_s, r.stats.consumer_wait_s);
    }
  }
  return 0;
}
