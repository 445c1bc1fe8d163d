// Prompt-embedding cache: LRU order, byte bound, counters, batch path and concurrent use.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include <torch/torch.h>

#include "core/error.hpp"
#include "text/embedding_cache.hpp"

using synth::EmbeddingCache;

namespace {
// An 8-float "embedding" (32 bytes) whose values identify the prompt.
torch::Tensor embed(const std::string& prompt) {
  return torch::full({8}, float(std::hash<std::string>{}(prompt) % 1000));
}
}  // namespace

TEST_CASE("LRU eviction order, byte bound and counters") {
  EmbeddingCache cache(100);  // room for three 32-byte tensors
  int computed = 0;
  auto fn = [&](const std::string& p) {
    ++computed;
    return embed(p);
  };
  for (const char* p : {"a", "b", "c"}) cache.get_or_compute(p, fn);
  CHECK(cache.bytes() == 96);
  CHECK(cache.get_or_compute("a", fn).equal(embed("a")));  // hit: a becomes most recent
  cache.get_or_compute("d", fn);                            // evicts b, the least recently used
  CHECK(cache.keys_by_recency() == std::vector<std::string>{"d", "a", "c"});
  CHECK(!cache.contains("b"));
  CHECK(cache.bytes() == 96);
  CHECK(cache.size() == 3);
  CHECK(cache.hits() == 1);
  CHECK(cache.misses() == 4);
  CHECK(cache.evictions() == 1);
  CHECK(computed == 4);
  cache.get_or_compute("b", fn);  // recomputed, evicts c
  CHECK(computed == 5);
  CHECK(cache.keys_by_recency() == std::vector<std::string>{"b", "d", "a"});
  CHECK(cache.evictions() == 2);

  // A tensor bigger than the bound is returned but never stored.
  const auto big = cache.get_or_compute("huge", [](const std::string&) { return torch::zeros({64}); });
  CHECK(big.numel() == 64);
  CHECK(!cache.contains("huge"));
  CHECK(cache.size() == 3);
  CHECK(cache.bytes() <= cache.max_bytes());

  CHECK(!cache.find("nothing").defined());
  CHECK(cache.misses() == 7);
  cache.clear();
  CHECK(cache.size() == 0);
  CHECK(cache.bytes() == 0);
}

TEST_CASE("batch lookups compute only distinct misses, in one call") {
  EmbeddingCache cache(1 << 20);
  cache.get_or_compute("x", embed);
  std::vector<std::vector<std::string>> calls;
  const auto out = cache.get_or_compute(std::vector<std::string>{"x", "y", "z", "y"}, [&](const std::vector<std::string>& ps) {
    calls.push_back(ps);
    std::vector<torch::Tensor> rows;
    for (const auto& p : ps) rows.push_back(embed(p));
    return torch::stack(rows);
  });
  REQUIRE(calls.size() == 1);
  CHECK(calls[0] == std::vector<std::string>{"y", "z"});
  REQUIRE(out.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(out[i].equal(embed(std::vector<std::string>{"x", "y", "z", "y"}[i])));
  CHECK(cache.size() == 3);
  CHECK(cache.bytes() == 96);
  CHECK(cache.hits() == 1);
  CHECK(cache.misses() == 4);
  CHECK_THROWS_AS(cache.get_or_compute(std::vector<std::string>{"w"}, [](const std::vector<std::string>&) { return torch::zeros({2, 8}); }),
                  synth::Error);
}

TEST_CASE("concurrent use returns the right tensors and keeps the bound") {
  EmbeddingCache cache(32 * 10);  // 10 of the 20 prompts fit
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string p = "prompt " + std::to_string((i * 7 + t) % 20);
        if (!cache.get_or_compute(p, embed).equal(embed(p))) ++wrong;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  CHECK(cache.hits() + cache.misses() == 8000);
  CHECK(cache.misses() >= 20);
  CHECK(cache.size() <= 10);
  CHECK(cache.bytes() == cache.size() * 32);
}
