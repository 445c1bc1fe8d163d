#include "eval/evaluator.hpp"

#include <algorithm>
#include <filesystem>

#include <ATen/Parallel.h>

#include "augment/simple_augment.hpp"
#include "core/error.hpp"

namespace synth {

std::pair<int64_t, int64_t> topk_correct(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t k = std::min<int64_t>(5, logits.size(1));
  const torch::Tensor top = std::get<1>(logits.topk(k, 1));  // N x k, best first
  const torch::Tensor hit = top.eq(labels.to(top.device()).view({-1, 1}));
  return {hit.select(1, 0).sum().item<int64_t>(), hit.any(1).sum().item<int64_t>()};
}

Evaluator::Evaluator(const Config& cfg) : cfg_(cfg) {
  dataset_ = open_eval_dataset(cfg);
  if (!dataset_) throw InputError("eval.source = \"none\": there is no evaluation set");
  const std::filesystem::path p(cfg.eval.path);
  name_ = cfg.eval.source == "fmnist" ? "fmnist-t10k" : (p.filename().empty() ? p.parent_path().filename() : p.filename()).string();
  const int64_t n = dataset_->size();
  labels_ = torch::empty({n}, torch::kInt64);
  int64_t* l = labels_.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    l[i] = dataset_->label(i);
    if (l[i] < 0 || l[i] >= cfg.model.num_classes)
      throw InputError("eval: " + dataset_->describe(i) + " has label " + std::to_string(l[i]) +
                       ", outside model.num_classes = " + std::to_string(cfg.model.num_classes));
  }
  const double bytes = double(n) * 3 * cfg.eval.crop * cfg.eval.crop * sizeof(float);
  if (bytes <= double(1ull << 30)) cached_ = batch(0, n);
}

torch::Tensor Evaluator::batch(int64_t begin, int64_t end) const {
  const int S = cfg_.eval.crop;
  torch::Tensor out = torch::empty({end - begin, 3, S, S}, torch::kFloat32);
  at::parallel_for(begin, end, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const ImageU8 img = dataset_->load(i);
      ImageView v{img.pixels.data(), img.height, img.width, img.channels, uint64_t(i)};
      out[i - begin].copy_(eval_preprocess(v, cfg_.eval.resize, S, cfg_.augment.mean, cfg_.augment.std));
    }
  });
  return out;
}

std::vector<EvalResult> Evaluator::operator()(const Classifier& classify) const {
  const int64_t n = dataset_->size(), bs = cfg_.eval.batch_size;
  int64_t top1 = 0, top5 = 0;
  for (int64_t b = 0; b < n; b += bs) {
    const int64_t e = std::min(n, b + bs);
    const torch::Tensor x = cached_.defined() ? cached_.slice(0, b, e) : batch(b, e);
    const auto hits = topk_correct(classify(x), labels_.slice(0, b, e));
    top1 += hits.first;
    top5 += hits.second;
  }
  EvalResult r;
  r.set = name_;
  r.images = n;
  r.top1 = double(top1) / double(n);
  r.top5 = double(top5) / double(n);
  return {r};
}

}  // namespace synth
