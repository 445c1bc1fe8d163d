#include "eval/evaluator.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <tuple>

#include "augment/simple_augment.hpp"
#include "config/eval_sets.hpp"
#include "core/error.hpp"
#include "eval/decode_pool.hpp"
#include "prompts/classes.hpp"

namespace synth {
namespace {

// Enough to show what kind of damage a set has without flooding a report.
constexpr size_t kCorruptExamples = 5;

ClassIds load_class_ids(const Config& cfg, const std::vector<EvalSetConfig>& sets) {
  ClassIds classes;
  const bool needed = std::any_of(sets.begin(), sets.end(),
                                  [](const EvalSetConfig& s) { return s.layout == "wnid" || s.layout == "index"; });
  if (!needed) return classes;
  classes.file = eval_class_file(cfg);
  if (classes.file.empty())
    throw InputError("eval: folders named by class id need a class file: set data.class_file");
  for (const ClassInfo& c : load_class_file(classes.file)) {
    if (c.id.empty())
      throw InputError(classes.file + ": class '" + c.name + "' has no id; evaluation folders are named by class id");
    classes.ids.push_back(c.id);
  }
  return classes;
}

// The images of a decoded batch that were readable, and their targets; the others (a non-empty
// entry in errors) are counted into corrupt, the first few kept in examples.
std::pair<torch::Tensor, torch::Tensor> readable(const torch::Tensor& images, const torch::Tensor& targets,
                                                 const std::vector<std::string>& errors, int64_t& corrupt,
                                                 std::vector<std::string>& examples) {
  std::vector<int64_t> keep;
  for (size_t i = 0; i < errors.size(); ++i) {
    if (errors[i].empty()) {
      keep.push_back(int64_t(i));
      continue;
    }
    ++corrupt;
    if (examples.size() < kCorruptExamples) examples.push_back(errors[i]);
  }
  if (keep.size() == errors.size()) return {images, targets};
  const torch::Tensor index = torch::tensor(keep, torch::kInt64);
  return {images.index_select(0, index), targets.index_select(0, index)};
}

}  // namespace

struct Evaluator::Batch {
  torch::Tensor images;                              // n x 3 x crop x crop
  std::shared_ptr<std::vector<std::string>> errors;  // per image: "" or why it was skipped
  std::future<void> done;
};

bool has_eval_sets(const Config& cfg) { return cfg.eval.source != "none" || !cfg.eval.sets.empty(); }

std::pair<int64_t, int64_t> topk_correct(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t k = std::min<int64_t>(5, logits.size(1));
  const torch::Tensor top = std::get<1>(logits.topk(k, 1));  // N x k, best first
  const torch::Tensor hit = top.eq(labels.to(top.device()).view({-1, 1}));
  return {hit.select(1, 0).sum().item<int64_t>(), hit.any(1).sum().item<int64_t>()};
}

Evaluator::Evaluator(const Config& cfg, EvalShard shard) : cfg_(cfg), shard_(shard) {
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
    throw InputError("eval: shard " + std::to_string(shard.index) + " of " + std::to_string(shard.count) +
                     " does not exist");
  const std::vector<EvalSetConfig> configs = eval_sets(cfg);
  if (configs.empty()) throw InputError("eval.source = \"none\" and eval.sets is empty: there is no evaluation set");
  const ClassIds classes = load_class_ids(cfg, configs);
  for (const EvalSetConfig& sc : configs) {
    Set s;
    s.opened = open_eval_set(sc, classes);
    const Dataset& data = *s.opened.data;
    const int64_t n = data.size();
    const torch::Tensor labels = torch::empty({n}, torch::kInt64);
    int64_t* l = labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      l[i] = data.label(i);
      if (l[i] < 0 || l[i] >= cfg.model.num_classes)
        throw InputError("eval: " + data.describe(i) + " has label " + std::to_string(l[i]) +
                         ", outside model.num_classes = " + std::to_string(cfg.model.num_classes));
    }
    s.begin = n * shard.index / shard.count;
    s.end = n * (shard.index + 1) / shard.count;
    s.targets = labels;
    if (!s.opened.scored.empty()) {
      if (s.opened.scored.back() >= cfg.model.num_classes)
        throw InputError("eval: set '" + sc.name + "' has class " + std::to_string(s.opened.scored.back()) +
                         ", outside model.num_classes = " + std::to_string(cfg.model.num_classes));
      s.scored = torch::tensor(s.opened.scored, torch::kInt64);
      std::map<int64_t, int64_t> position;
      for (size_t p = 0; p < s.opened.scored.size(); ++p) position.emplace(s.opened.scored[p], int64_t(p));
      s.targets = torch::empty({n}, torch::kInt64);
      int64_t* t = s.targets.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) t[i] = position.at(l[i]);
    }
    sets_.push_back(std::move(s));
  }

  // Sets that fit eval.cache_mb together with the ones cached before them are decoded now and kept.
  const double budget = double(cfg.eval.cache_mb) * (1 << 20);
  const double per_image = 3.0 * cfg.eval.crop * cfg.eval.crop * sizeof(float) + sizeof(int64_t);  // image + target
  double used = 0;
  std::unique_ptr<DecodePool> pool;
  for (Set& s : sets_) {
    const int64_t n = s.end - s.begin;
    if (used + n * per_image > budget) continue;
    used += n * per_image;
    if (!pool) pool = std::make_unique<DecodePool>(cfg.eval.decode_threads);
    Batch b = decode(s, s.begin, s.end, *pool);
    b.done.get();
    std::tie(s.cached, s.cached_targets) =
        readable(b.images, s.targets.slice(0, s.begin, s.end), *b.errors, s.cached_corrupt, s.cached_examples);
  }
}

int64_t Evaluator::cached_bytes() const {
  int64_t n = 0;
  for (const Set& s : sets_)
    if (s.cached.defined()) n += int64_t(s.cached.nbytes()) + int64_t(s.cached_targets.nbytes());
  return n;
}

int64_t Evaluator::size() const {
  int64_t n = 0;
  for (const Set& s : sets_) n += s.end - s.begin;
  return n;
}

Evaluator::Batch Evaluator::decode(const Set& set, int64_t begin, int64_t end, DecodePool& pool) const {
  const int crop = cfg_.eval.crop, resize = cfg_.eval.resize;
  const std::vector<double> mean = cfg_.augment.mean, std = cfg_.augment.std;
  const bool skip = cfg_.eval.on_corrupt == "skip";
  const Dataset* data = set.opened.data.get();
  Batch b;
  b.images = torch::empty({end - begin, 3, crop, crop}, torch::kFloat32);
  b.errors = std::make_shared<std::vector<std::string>>(size_t(end - begin));
  // The job holds its own references to the output tensor (whose storage `out` points into) and the
  // error list: they stay valid even if the caller stops waiting (an exception elsewhere) while
  // the threads finish the batch.
  const torch::Tensor images = b.images;
  const auto errors = b.errors;
  float* out = images.data_ptr<float>();
  const size_t per_image = size_t(3) * crop * crop;
  const auto item = [images, errors, out, per_image, data, begin, skip, resize, crop, mean, std](int64_t i) {
    ImageU8 img;
    try {
      img = data->load(begin + i);
    } catch (const InputError& e) {
      if (!skip) throw;
      (*errors)[size_t(i)] = e.what();
      return;
    }
    const ImageView view{img.pixels.data(), img.height, img.width, img.channels, uint64_t(begin + i)};
    eval_preprocess_into(view, resize, crop, mean, std, out + size_t(i) * per_image);
  };
  b.done = pool.run(end - begin, item);
  return b;
}

EvalSetReport Evaluator::evaluate_set(const Set& set, const Classifier& classify, DecodePool& pool) const {
  EvalSetReport report;
  report.result.set = set.opened.config.name;
  report.classes = set.scored.defined() ? set.scored.numel() : cfg_.model.num_classes;
  if (shard_.index == 0) {
    report.unknown_folders = set.opened.unknown_folders;
    report.unknown_images = set.opened.unknown_images;
  }
  const auto score = [&](const torch::Tensor& x, const torch::Tensor& targets) {
    if (x.size(0) == 0) return;
    torch::Tensor logits = classify(x);
    if (logits.dim() != 2 || logits.size(0) != x.size(0) || logits.size(1) < cfg_.model.num_classes)
      throw Error("eval: the classifier returned logits of shape " + std::to_string(logits.dim()) + "-d [" +
                  std::to_string(logits.size(0)) + ", ...] for " + std::to_string(x.size(0)) + " images and " +
                  std::to_string(cfg_.model.num_classes) + " classes");
    if (set.scored.defined()) logits = logits.index_select(1, set.scored.to(logits.device()));
    const auto hits = topk_correct(logits, targets);
    report.result.top1_hits += hits.first;
    report.result.top5_hits += hits.second;
    report.result.images += x.size(0);
  };

  const int64_t bs = cfg_.eval.batch_size;
  if (set.cached.defined()) {
    report.corrupt = set.cached_corrupt;
    report.corrupt_examples = set.cached_examples;
    for (int64_t b = 0; b < set.cached.size(0); b += bs) {
      const int64_t e = std::min(set.cached.size(0), b + bs);
      score(set.cached.slice(0, b, e), set.cached_targets.slice(0, b, e));
    }
  } else {
    const int64_t n = set.end;
    Batch next = decode(set, set.begin, std::min(n, set.begin + bs), pool);
    for (int64_t b = set.begin; b < n; b += bs) {
      const int64_t e = std::min(n, b + bs);
      Batch cur = std::move(next);
      cur.done.get();
      if (e < n) next = decode(set, e, std::min(n, e + bs), pool);
      const auto [x, targets] = readable(cur.images, set.targets.slice(0, b, e), *cur.errors, report.corrupt,
                                         report.corrupt_examples);
      score(x, targets);
    }
  }
  report.result.skipped = report.corrupt + report.unknown_images;
  report.result.set_fractions();
  return report;
}

std::vector<EvalSetReport> Evaluator::evaluate(const Classifier& classify) const {
  DecodePool pool(cfg_.eval.decode_threads);
  std::vector<EvalSetReport> reports;
  for (const Set& s : sets_) reports.push_back(evaluate_set(s, classify, pool));
  return reports;
}

std::vector<EvalResult> Evaluator::operator()(const Classifier& classify) const {
  std::vector<EvalResult> results;
  for (const EvalSetReport& r : evaluate(classify)) results.push_back(r.result);
  return results;
}

}  // namespace synth
