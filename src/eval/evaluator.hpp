// Top-1/top-5 accuracy of a classifier on real held-out sets: the eval.source/eval.path set and
// every eval.sets entry (config/eval_sets.hpp, eval/eval_set.hpp), one result per set in that
// order. Each image is resized (shorter side eval.resize), centre-cropped (eval.crop) and
// normalized with augment.mean/augment.std, as torchvision's standard ImageNet evaluation
// transform (eval_preprocess in augment/simple_augment.hpp, antialiased bilinear). Logit r is row
// r of the class file (eval_class_file); a set with classes = present ranks only the logits of
// the classes it has (ImageNet-R/-A style), so its top-1 is among those.
//
// Small sets (in order, each that still fits eval.cache_mb as float tensors together with the ones
// before it, e.g. Fashion-MNIST's 10k test images) are decoded once, at construction, and kept; the
// others are decoded at every evaluation by eval.decode_threads threads, the next batch while the
// classifier runs on this one.
// An unreadable image is an InputError naming the file, or with eval.on_corrupt = "skip" it is
// left out and counted in EvalSetReport::corrupt.
//
// A job of several trainer ranks splits every set: rank r of R opens the whole listing (so every
// rank validates it alike) but decodes, caches and scores only images [n r / R, n (r + 1) / R) of
// each set (EvalShard). Per-image logits do not depend on the batch an image is in (eval-mode batch
// norm), so the hit counts summed over the shards are the one-rank counts.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.hpp"
#include "eval/eval_result.hpp"
#include "eval/eval_set.hpp"

namespace synth {

class DecodePool;

// This rank's share of every evaluation set: shard `index` of `count` (trainer rank, trainer ranks).
struct EvalShard {
  int index = 0;
  int count = 1;
};

// What EvalResult says about one set (or this shard of it), and what was left out.
struct EvalSetReport {
  EvalResult result;                // set, images scored, hits, top-1, top-5, skipped
  int64_t classes = 0;              // logits ranked: model.num_classes, or the set's classes (present)
  int64_t corrupt = 0;              // unreadable images skipped (eval.on_corrupt = "skip")
  std::vector<std::string> corrupt_examples;  // the first few, as "<file>: <decoder message>"
  int64_t unknown_folders = 0;      // folders skipped for an id outside the class file (unknown=skip)
  int64_t unknown_images = 0;       // images in them; the set's, so shard 0 alone reports them
};

// True when cfg names at least one evaluation set (eval.source other than "none", or eval.sets).
bool has_eval_sets(const Config& cfg);

class Evaluator {
 public:
  // Opens every set: InputError naming the set's file or folder when unusable (see
  // open_eval_set), for no set at all, for labels beyond model.num_classes, and for a shard
  // outside [0, count). Cached sets (this shard's images of them) are decoded here, so their
  // unreadable images fail here.
  explicit Evaluator(const Config& cfg, EvalShard shard = {});
  // One EvalResult per set (the trainer's interface, TrainHooks::evaluate).
  std::vector<EvalResult> operator()(const Classifier& classify) const;
  // The same with hit counts and skips.
  std::vector<EvalSetReport> evaluate(const Classifier& classify) const;
  int64_t size() const;  // images of this shard over all sets, unreadable ones included
  size_t set_count() const { return sets_.size(); }
  // Bytes of preprocessed images kept between evaluations: at most eval.cache_mb MiB.
  int64_t cached_bytes() const;

 private:
  struct Set {
    OpenedEvalSet opened;
    int64_t begin = 0, end = 0;  // this shard's images of the set
    torch::Tensor scored;   // int64 logits ranked (classes = present); undefined = all
    torch::Tensor targets;  // int64 per image: its class as a position among `scored`, or its logit row
    torch::Tensor cached;   // preprocessed readable images, or undefined when decoded per call
    torch::Tensor cached_targets;
    int64_t cached_corrupt = 0;
    std::vector<std::string> cached_examples;
  };
  struct Batch;

  Batch decode(const Set& set, int64_t begin, int64_t end, DecodePool& pool) const;
  EvalSetReport evaluate_set(const Set& set, const Classifier& classify, DecodePool& pool) const;

  Config cfg_;
  EvalShard shard_;
  std::vector<Set> sets_;
};

// Counts of correct top-1 and top-5 predictions of logits (N x C) for labels (N).
std::pair<int64_t, int64_t> topk_correct(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace synth
