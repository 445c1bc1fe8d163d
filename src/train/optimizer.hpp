// SGD with momentum (torch.optim.SGD semantics: v = mu v + g + wd p; p -= lr v) over two parameter
// groups - decayed weights, and BatchNorm parameters plus biases without decay (Goyal et al. 2017,
// "Accurate, Large Minibatch SGD", Sec. 5.1: no decay on BN gamma/beta) unless
// optim.decay_bn_and_bias - and its learning-rate schedule: linear warm-up then cosine to a floor
// (Loshchilov & Hutter 2017, SGDR, without restarts). The peak lr scales linearly with the batch:
// lr * batch / 256 (Goyal et al. 2017, Sec. 2.1).
#pragma once
#include <cstdint>
#include <memory>

#include <torch/torch.h>

#include "config/config.hpp"

namespace synth {

struct LrSchedule {
  double peak = 0.1, floor = 0;
  int64_t warmup_steps = 0, total_steps = 1;

  static LrSchedule from_config(const OptimConfig& optim, int64_t batch_size, int64_t total_steps);
  // lr of 0-based step s: peak * (s + 1) / warmup during warm-up (never 0, so step 0 learns), then
  // floor + (peak - floor) * (1 + cos(pi * progress)) / 2 with progress 0 at the first cosine
  // step and 1 at the last.
  double at(int64_t step) const;
};

// torch::optim::SGD (its options, state and checkpoint format) whose step runs each parameter
// group as a few multi-tensor _foreach_ operations, as torch.optim.SGD does by default on GPUs
// (foreach=True), instead of ~4 small kernels per parameter: ResNet-50's 161 parameters would cost
// ~650 launches a step. Same arithmetic as SGD::step: d = g + wd p; b = g on the first step, else
// mu b + (1 - dampening) d; p -= lr (nesterov ? d + mu b : b).
class ForeachSgd final : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// SGD over `module`'s parameters in two groups (0: decayed, 1: not decayed, absent when empty); the lr is set per
// step by set_lr.
std::unique_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& module, const OptimConfig& optim);
void set_lr(torch::optim::Optimizer& optimizer, double lr);

}  // namespace synth
