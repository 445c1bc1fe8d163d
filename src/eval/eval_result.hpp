// What evaluation returns and what it needs from a model: the interface between the trainer (which
// calls an evaluator through TrainHooks) and eval/evaluator.hpp, so that neither stage includes the
// other's implementation and stream-eval needs no trainer.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <torch/torch.h>

namespace synth {

struct EvalResult {
  std::string set;      // e.g. "fmnist-test", "in100-val"
  int64_t images = 0;   // images scored
  int64_t top1_hits = 0, top5_hits = 0;
  double top1 = 0, top5 = 0;  // the hits as fractions of images, in [0, 1]
  int64_t skipped = 0;        // images left out: unreadable (eval.on_corrupt = "skip") or of unknown classes

  // top1/top5 from the counts (0 for no image), after the counts of several shards were summed.
  void set_fractions() {
    top1 = images > 0 ? double(top1_hits) / double(images) : 0.0;
    top5 = images > 0 ? double(top5_hits) / double(images) : 0.0;
  }
};

// Maps a batch of normalized images (N x 3 x H x W, float) to logits (N x classes); the evaluator
// only ever sees this, never the model type.
using Classifier = std::function<torch::Tensor(const torch::Tensor&)>;

}  // namespace synth
