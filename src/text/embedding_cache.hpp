// Prompt-embedding cache. The prompt stream draws from a finite set of distinct prompts (classes x
// templates x scenes), so each text-encoder output is computed once per distinct prompt and reused
// for every later image with that prompt. LRU keyed by the prompt text, bounded by the bytes of
// the stored tensors; thread-safe; counts hits, misses and evictions.
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

namespace synth {

class EmbeddingCache {
 public:
  using Compute = std::function<at::Tensor(const std::string& prompt)>;
  // Computes the embeddings of several prompts at once (one encoder batch); returns one tensor per
  // prompt whose first dimension indexes the prompts.
  using ComputeBatch = std::function<at::Tensor(const std::vector<std::string>& prompts)>;

  // max_bytes = 0 disables storing (every call computes; counters still count).
  explicit EmbeddingCache(size_t max_bytes);

  // The cached tensor for `prompt`, or compute(prompt), stored as most recently used. The compute
  // function runs without the lock held, so concurrent misses on different prompts encode in
  // parallel (two concurrent misses on the same prompt may both compute; the first stored wins).
  // A tensor larger than max_bytes is returned but not stored. Callers must not modify the
  // returned tensor in place (it is shared with the cache).
  at::Tensor get_or_compute(const std::string& prompt, const Compute& compute);
  // Same for a batch: the misses (deduplicated) go to compute_batch in one call; returns one
  // tensor per prompt, in order.
  std::vector<at::Tensor> get_or_compute(const std::vector<std::string>& prompts, const ComputeBatch& compute_batch);

  // Lookup without computing; counts as a hit or a miss. Undefined tensor on a miss.
  at::Tensor find(const std::string& prompt);
  bool contains(const std::string& prompt) const;

  uint64_t hits() const;
  uint64_t misses() const;
  uint64_t evictions() const;
  size_t bytes() const;    // bytes of the stored tensors
  size_t size() const;     // stored prompts
  size_t max_bytes() const { return max_bytes_; }
  // Prompts from most to least recently used.
  std::vector<std::string> keys_by_recency() const;
  void clear();

  // Bytes a tensor accounts for: numel x element size.
  static size_t tensor_bytes(const at::Tensor& t);

 private:
  struct Entry {
    std::string prompt;
    at::Tensor value;
    size_t bytes;
  };
  void insert_locked(const std::string& prompt, const at::Tensor& value);

  const size_t max_bytes_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;  // front = most recently used
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t bytes_ = 0;
  uint64_t hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace synth
