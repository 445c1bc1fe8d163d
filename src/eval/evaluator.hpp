// Top-1/top-5 accuracy of a classifier on a real held-out set (eval.source/eval.path): each image
// resized (shorter side eval.resize), centre-cropped (eval.crop) and normalized with augment.mean/
// augment.std, as torchvision's standard ImageNet evaluation transform. Small sets (<= 1 GiB as
// float tensors, e.g. Fashion-MNIST's 10k test images) are decoded once and kept; larger ones are
// decoded batch by batch at every evaluation.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.hpp"
#include "sources/dataset.hpp"
#include "train/trainer.hpp"

namespace synth {

class Evaluator {
 public:
  // Opens eval.source (InputError naming the path when unusable). Labels beyond the model's
  // num_classes are an InputError.
  explicit Evaluator(const Config& cfg);
  std::vector<EvalResult> operator()(const Classifier& classify) const;
  int64_t size() const { return dataset_->size(); }
  const std::string& name() const { return name_; }

 private:
  torch::Tensor batch(int64_t begin, int64_t end) const;  // preprocessed images [begin, end)

  Config cfg_;
  std::unique_ptr<Dataset> dataset_;
  std::string name_;
  torch::Tensor labels_;  // int64, all items
  torch::Tensor cached_;  // all preprocessed images, or undefined when too large
};

// Counts of correct top-1 and top-5 predictions of logits (N x C) for labels (N).
std::pair<int64_t, int64_t> topk_correct(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace synth
