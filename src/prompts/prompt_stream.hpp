// The prompt stream: a pure function from (run seed, global image index) to what the generator
// makes for that index (class, template, scene, noise seed, prompt text). Any image of the
// infinite stream is addressable and reproducible, and no decision depends on how indices are
// spread over generator processes, batches or threads.
//
// Class choice. Balanced (default): indices are cut into blocks of N*k (N classes, k = block
// multiplier); block b is a Fisher-Yates permutation of k copies of every class keyed by
// CounterRng(seed, b, kPromptClass), so every full block holds each class exactly k times.
// Weighted (class weights file, e.g. the real ImageNet per-class image counts the paper keeps):
// index i draws its class from the weights with Walker's alias method keyed by
// CounterRng(seed, i, kPromptClass, sub 1).
// Template: drawn from the template weights with CounterRng(seed, i, kPromptTemplate).
// Scene (only for templates with "inside b"): uniform over Places365, CounterRng(seed, i, kPromptScene).
// Noise seed: CounterRng(seed, i, kNoise).next_u64(), for consumers that want a single 64-bit seed.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "prompts/classes.hpp"
#include "prompts/templates.hpp"

namespace synth {

// The [prompts] config plus the seed (run.seed), as the stream needs it.
struct PromptStreamConfig : PromptsConfig {
  uint64_t seed = 0;
};

struct PromptEntry {
  uint64_t index = 0;
  int32_t class_index = 0;           // row of the class file = training label
  PromptTemplate prompt_template = PromptTemplate::kC;
  int32_t scene = -1;                // index into the scene list, -1 if the template has no scene
  uint64_t noise_seed = 0;
  std::string prompt;
};

// Class weights file: one class per line, "<key> <weight>" where key is the class id, or the class
// name for classes without id, and weight a non-negative number (last whitespace-separated field).
// Returns one weight per class in class-file order. InputError naming the file for unknown or
// missing classes, bad numbers, or an all-zero total.
std::vector<double> load_class_weights(const std::string& path, const std::vector<ClassInfo>& classes);

class PromptStream {
 public:
  // Validates everything up front (so generation never fails half-way): template names and
  // weights, class fields each weighted template needs, scenes present if needed, k >= 1 and a
  // block of at most 2^26 entries, class weights finite and non-negative with a positive sum.
  PromptStream(uint64_t seed, std::vector<ClassInfo> classes, std::vector<PromptTemplate> templates,
               std::vector<double> template_weights, std::vector<std::string> scenes, int64_t block_multiplier = 1,
               std::vector<double> class_weights = {});
  // Reads the class, scene and weight files the config names.
  static PromptStream from_config(const PromptStreamConfig& config);
  // The prompt stream of a run: its [prompts] with run.seed (what the generator, stream-sample and
  // stream-sd-train all use).
  static PromptStream of_run(const Config& cfg);

  PromptEntry at(uint64_t index) const;
  // Entries begin, begin+1, ..., end-1 (same as calling at() for each, but one permutation per block).
  std::vector<PromptEntry> range(uint64_t begin, uint64_t end) const;
  int32_t class_at(uint64_t index) const;
  // The template, scene and prompt index `index` would get if its class were `class_index`: the
  // same draws as at(index), with the class given. For training a text-to-image model on labelled
  // images with the prompts the stream will later ask it for (stream-sd-train).
  PromptEntry for_class(uint64_t index, int32_t class_index) const;

  const std::vector<ClassInfo>& classes() const { return classes_; }
  const std::vector<std::string>& scenes() const { return scenes_; }
  const std::vector<PromptTemplate>& templates() const { return templates_; }
  const std::vector<double>& template_weights() const { return template_weights_; }
  bool balanced() const { return alias_prob_.empty(); }
  uint64_t block_size() const { return block_size_; }
  uint64_t seed() const { return seed_; }

 private:
  // The class permutation of one block; the last one computed is kept (most callers walk
  // indices in order).
  std::shared_ptr<const std::vector<int32_t>> block(uint64_t b) const;
  PromptEntry entry(uint64_t index, int32_t class_index) const;
  int32_t weighted_class(uint64_t index) const;

  uint64_t seed_;
  std::vector<ClassInfo> classes_;
  std::vector<PromptTemplate> templates_;
  std::vector<double> template_weights_;   // normalized
  std::vector<double> template_cdf_;
  std::vector<std::string> scenes_;
  uint64_t block_size_ = 0;
  std::vector<double> alias_prob_;         // Walker alias tables (weighted mode only)
  std::vector<int32_t> alias_;
  // Behind a pointer so the stream stays movable.
  struct BlockCache {
    std::mutex mutex;
    uint64_t block = UINT64_MAX;
    std::shared_ptr<const std::vector<int32_t>> perm;
  };
  std::unique_ptr<BlockCache> cache_ = std::make_unique<BlockCache>();
};

// "index<TAB>class<TAB>id<TAB>template<TAB>scene<TAB>noise_seed<TAB>prompt" lines (with that header)
// for `count` entries from `begin`: what `stream-sample --list-prompts N` prints.
std::string format_prompt_listing(const PromptStream& stream, uint64_t begin, uint64_t count);

}  // namespace synth
