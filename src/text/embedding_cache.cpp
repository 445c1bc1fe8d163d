#include "text/embedding_cache.hpp"


#include "core/error.hpp"

namespace synth {

EmbeddingCache::EmbeddingCache(size_t max_bytes) : max_bytes_(max_bytes) {}

size_t EmbeddingCache::tensor_bytes(const at::Tensor& t) {
  return t.defined() ? size_t(t.numel()) * size_t(t.element_size()) : 0;
}

void EmbeddingCache::insert_locked(const std::string& prompt, const at::Tensor& value) {
  if (index_.count(prompt)) return;  // a concurrent miss stored it first
  const size_t b = tensor_bytes(value);
  if (b > max_bytes_) return;
  while (bytes_ + b > max_bytes_ && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().prompt);
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(Entry{prompt, value, b});
  index_[prompt] = lru_.begin();
  bytes_ += b;
}

at::Tensor EmbeddingCache::find(const std::string& prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = index_.find(prompt);
  if (it == index_.end()) {
    ++misses_;
    return at::Tensor();
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

at::Tensor EmbeddingCache::get_or_compute(const std::string& prompt, const Compute& compute) {
  at::Tensor hit = find(prompt);
  if (hit.defined()) return hit;
  at::Tensor value = compute(prompt);
  if (!value.defined()) throw Error("embedding cache: compute returned no tensor for prompt '" + prompt + "'");
  std::lock_guard<std::mutex> lock(mutex_);
  insert_locked(prompt, value);
  return value;
}

std::vector<at::Tensor> EmbeddingCache::get_or_compute(const std::vector<std::string>& prompts,
                                                       const ComputeBatch& compute_batch) {
  std::vector<at::Tensor> out(prompts.size());
  std::vector<std::string> missing;
  std::unordered_map<std::string, size_t> missing_row;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto it = index_.find(prompts[i]);
      if (it != index_.end()) {
        ++hits_;
        lru_.splice(lru_.begin(), lru_, it->second);
        out[i] = it->second->value;
      } else {
        ++misses_;
        if (missing_row.emplace(prompts[i], missing.size()).second) missing.push_back(prompts[i]);
      }
    }
  }
  if (missing.empty()) return out;
  const at::Tensor computed = compute_batch(missing);
  if (!computed.defined() || computed.dim() < 1 || computed.size(0) != int64_t(missing.size()))
    throw Error("embedding cache: batch compute returned " +
                (computed.defined() ? std::to_string(computed.dim() ? computed.size(0) : 0) : std::string("no")) +
                " rows for " + std::to_string(missing.size()) + " prompts");
  std::vector<at::Tensor> rows(missing.size());
  // Stored rows are cloned so each cache entry owns only its own bytes, not the whole batch.
  for (size_t r = 0; r < missing.size(); ++r) rows[r] = computed.select(0, int64_t(r)).clone();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t r = 0; r < missing.size(); ++r) insert_locked(missing[r], rows[r]);
  }
  for (size_t i = 0; i < prompts.size(); ++i)
    if (!out[i].defined()) out[i] = rows[missing_row.at(prompts[i])];
  return out;
}

bool EmbeddingCache::contains(const std::string& prompt) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return index_.count(prompt) > 0;
}

uint64_t EmbeddingCache::hits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return hits_;
}
uint64_t EmbeddingCache::misses() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return misses_;
}
uint64_t EmbeddingCache::evictions() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return evictions_;
}
size_t EmbeddingCache::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}
size_t EmbeddingCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

std::vector<std::string> EmbeddingCache::keys_by_recency() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> keys;
  for (const auto& e : lru_) keys.push_back(e.prompt);
  return keys;
}

void EmbeddingCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

}  // namespace synth
