#include "prompts/prompt_stream.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace synth {
namespace {

// Largest block we are willing to materialize (2^26 class indices = 256 MiB would already be
// absurd; real runs use N*k of a few thousand).
constexpr uint64_t kMaxBlock = uint64_t(1) << 26;

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

}  // namespace

std::vector<double> load_class_weights(const std::string& path, const std::vector<ClassInfo>& classes) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < classes.size(); ++i) index[classes[i].id.empty() ? classes[i].name : classes[i].id] = i;
  std::vector<double> weights(classes.size(), -1.0);
  std::istringstream in(read_text_file(path));
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string where = path + ":" + std::to_string(n);
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const size_t sep = t.find_last_of(" \t");
    if (sep == std::string::npos) throw InputError(where + ": expected '<class id or name> <weight>'");
    const std::string key = trim(t.substr(0, sep)), value = t.substr(sep + 1);
    char* end = nullptr;
    const double w = std::strtod(value.c_str(), &end);
    if (end != value.c_str() + value.size() || !std::isfinite(w) || w < 0)
      throw InputError(where + ": weight '" + value + "' is not a finite non-negative number");
    const auto it = index.find(key);
    if (it == index.end()) throw InputError(where + ": class '" + key + "' is not in the class list");
    if (weights[it->second] >= 0) throw InputError(where + ": class '" + key + "' listed twice");
    weights[it->second] = w;
  }
  for (size_t i = 0; i < classes.size(); ++i)
    if (weights[i] < 0)
      throw InputError(path + ": no weight for class '" + (classes[i].id.empty() ? classes[i].name : classes[i].id) + "'");
  return weights;
}

PromptStream::PromptStream(uint64_t seed, std::vector<ClassInfo> classes, std::vector<PromptTemplate> templates,
                           std::vector<double> template_weights, std::vector<std::string> scenes,
                           int64_t block_multiplier, std::vector<double> class_weights)
    : seed_(seed), classes_(std::move(classes)), templates_(std::move(templates)), scenes_(std::move(scenes)) {
  if (classes_.empty()) throw InputError("prompt stream: class list is empty");
  if (classes_.size() > uint64_t(INT32_MAX)) throw InputError("prompt stream: too many classes");
  if (templates_.empty()) throw InputError("prompt stream: no prompt templates given");
  if (template_weights.empty()) template_weights.assign(templates_.size(), 1.0);
  if (template_weights.size() != templates_.size())
    throw InputError("prompt stream: " + std::to_string(template_weights.size()) + " template weights for " +
                     std::to_string(templates_.size()) + " templates");
  double total = 0;
  for (double w : template_weights) {
    if (!std::isfinite(w) || w < 0) throw InputError("prompt stream: template weights must be finite and >= 0");
    total += w;
  }
  if (!(total > 0)) throw InputError("prompt stream: template weights sum to zero");
  double acc = 0;
  for (size_t t = 0; t < templates_.size(); ++t) {
    template_weights_.push_back(template_weights[t] / total);
    acc += template_weights_.back();
    template_cdf_.push_back(acc);
    if (template_weights[t] == 0) continue;
    // Fail now rather than at image 10^6: render once per class with a placeholder scene.
    for (const auto& c : classes_) render_prompt(templates_[t], c, "scene");
    if (template_needs_scene(templates_[t]) && scenes_.empty())
      throw InputError("prompt stream: template " + std::string(template_name(templates_[t])) +
                       " needs scenes, scene list is empty");
  }
  template_cdf_.back() = 1.0;

  if (block_multiplier < 1) throw InputError("prompt stream: block_multiplier must be >= 1, got " + std::to_string(block_multiplier));
  if (uint64_t(block_multiplier) > kMaxBlock / classes_.size())
    throw InputError("prompt stream: block_multiplier " + std::to_string(block_multiplier) + " x " +
                     std::to_string(classes_.size()) + " classes exceeds the largest block (2^26)");
  block_size_ = uint64_t(block_multiplier) * classes_.size();

  if (!class_weights.empty()) {
    if (class_weights.size() != classes_.size())
      throw InputError("prompt stream: " + std::to_string(class_weights.size()) + " class weights for " +
                       std::to_string(classes_.size()) + " classes");
    double sum = 0;
    for (double w : class_weights) {
      if (!std::isfinite(w) || w < 0) throw InputError("prompt stream: class weights must be finite and >= 0");
      sum += w;
    }
    if (!(sum > 0)) throw InputError("prompt stream: class weights sum to zero");
    // Vose's construction of Walker's alias tables: O(N) setup, O(1) per draw.
    const size_t n = classes_.size();
    alias_prob_.assign(n, 1.0);
    alias_.resize(n);
    std::vector<double> scaled(n);
    std::vector<int32_t> small, large;
    for (size_t i = 0; i < n; ++i) {
      scaled[i] = class_weights[i] * double(n) / sum;
      alias_[i] = int32_t(i);
      (scaled[i] < 1.0 ? small : large).push_back(int32_t(i));
    }
    while (!small.empty() && !large.empty()) {
      const int32_t s = small.back(), l = large.back();
      small.pop_back();
      alias_prob_[s] = scaled[s];
      alias_[s] = l;
      scaled[l] -= 1.0 - scaled[s];
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    // Leftovers are 1 up to rounding.
    for (int32_t i : small) alias_prob_[i] = 1.0;
    for (int32_t i : large) alias_prob_[i] = 1.0;
  }
}

PromptStream PromptStream::of_run(const Config& cfg) {
  PromptStreamConfig pc;
  static_cast<PromptsConfig&>(pc) = cfg.prompts;
  pc.seed = cfg.run.seed;
  return from_config(pc);
}

PromptStream PromptStream::from_config(const PromptStreamConfig& config) {
  auto classes = load_class_file(config.class_file);
  std::vector<PromptTemplate> templates;
  for (const auto& name : config.templates) templates.push_back(parse_template_name(name));
  std::vector<std::string> scenes;
  bool need_scenes = false;
  for (size_t t = 0; t < templates.size(); ++t)
    need_scenes |= template_needs_scene(templates[t]) &&
                   (config.template_weights.empty() || (t < config.template_weights.size() && config.template_weights[t] > 0));
  if (need_scenes) scenes = load_scenes(config.scene_file);
  std::vector<double> class_weights;
  if (!config.class_weights_file.empty()) class_weights = load_class_weights(config.class_weights_file, classes);
  return PromptStream(config.seed, std::move(classes), std::move(templates), config.template_weights, std::move(scenes),
                      config.block_multiplier, std::move(class_weights));
}

std::shared_ptr<const std::vector<int32_t>> PromptStream::block(uint64_t b) const {
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->block == b) return cache_->perm;
  }
  auto perm = std::make_shared<std::vector<int32_t>>(block_size_);
  const uint64_t n = classes_.size();
  for (uint64_t j = 0; j < block_size_; ++j) (*perm)[j] = int32_t(j % n);
  // Fisher-Yates from the top (Knuth, TAOCP vol. 2, Algorithm 3.4.2P).
  CounterRng rng(seed_, b, RngPurpose::kPromptClass);
  for (uint64_t j = block_size_ - 1; j > 0; --j) std::swap((*perm)[j], (*perm)[rng.below(j + 1)]);
  std::lock_guard<std::mutex> lock(cache_->mutex);
  cache_->block = b;
  cache_->perm = perm;
  return perm;
}

int32_t PromptStream::weighted_class(uint64_t index) const {
  CounterRng rng(seed_, index, RngPurpose::kPromptClass, 1);
  const int32_t column = int32_t(rng.below(alias_prob_.size()));
  return rng.uniform_double() < alias_prob_[column] ? column : alias_[column];
}

int32_t PromptStream::class_at(uint64_t index) const {
  if (!balanced()) return weighted_class(index);
  return (*block(index / block_size_))[index % block_size_];
}

PromptEntry PromptStream::entry(uint64_t index, int32_t class_index) const {
  PromptEntry e;
  e.index = index;
  e.class_index = class_index;
  size_t t = 0;
  if (templates_.size() > 1) {
    const double u = CounterRng(seed_, index, RngPurpose::kPromptTemplate).uniform_double();
    t = size_t(std::upper_bound(template_cdf_.begin(), template_cdf_.end(), u) - template_cdf_.begin());
    if (t >= templates_.size()) t = templates_.size() - 1;
  }
  e.prompt_template = templates_[t];
  std::string scene;
  if (template_needs_scene(e.prompt_template)) {
    e.scene = int32_t(CounterRng(seed_, index, RngPurpose::kPromptScene).below(scenes_.size()));
    scene = scenes_[size_t(e.scene)];
  }
  e.noise_seed = CounterRng(seed_, index, RngPurpose::kNoise).next_u64();
  e.prompt = render_prompt(e.prompt_template, classes_[size_t(class_index)], scene);
  return e;
}

PromptEntry PromptStream::at(uint64_t index) const { return entry(index, class_at(index)); }

PromptEntry PromptStream::for_class(uint64_t index, int32_t class_index) const {
  if (class_index < 0 || size_t(class_index) >= classes_.size())
    throw InputError("prompt stream: class " + std::to_string(class_index) + " is outside the " +
                     std::to_string(classes_.size()) + " classes of the class file");
  return entry(index, class_index);
}

std::vector<PromptEntry> PromptStream::range(uint64_t begin, uint64_t end) const {
  std::vector<PromptEntry> out;
  if (end <= begin) return out;
  out.reserve(size_t(end - begin));
  std::shared_ptr<const std::vector<int32_t>> perm;
  uint64_t current = UINT64_MAX;
  for (uint64_t i = begin; i < end; ++i) {
    if (!balanced()) {
      out.push_back(entry(i, weighted_class(i)));
      continue;
    }
    const uint64_t b = i / block_size_;
    if (b != current) {
      perm = block(b);
      current = b;
    }
    out.push_back(entry(i, (*perm)[i % block_size_]));
  }
  return out;
}

std::string format_prompt_listing(const PromptStream& stream, uint64_t begin, uint64_t count) {
  std::string out = "index\tclass\tid\ttemplate\tscene\tnoise_seed\tprompt\n";
  for (const auto& e : stream.range(begin, begin + count)) {
    const auto& c = stream.classes()[size_t(e.class_index)];
    out += std::to_string(e.index) + "\t" + std::to_string(e.class_index) + "\t" + (c.id.empty() ? "-" : c.id) + "\t" +
           template_name(e.prompt_template) + "\t" + (e.scene < 0 ? "-" : stream.scenes()[size_t(e.scene)]) + "\t" +
           std::to_string(e.noise_seed) + "\t" + e.prompt + "\n";
  }
  return out;
}

}  // namespace synth
