// One SGD step of the protocol on this rank's crops of one global batch: forward per crop size
// under autocast, cross-entropy summed over the crops and divided by the job-wide crop count,
// backward with the gradient all-reduce overlapped (GradReducer), unscale, step, loss-scale update.
// stream-train's loop and bench_train_step both run exactly this.
#pragma once
#include <vector>

#include <torch/torch.h>

#include "augment/train_augment.hpp"
#include "distributed/grad_reducer.hpp"
#include "train/amp.hpp"
#include "train/resnet.hpp"

namespace synth {

struct TrainStepResult {
  double loss = 0;      // this rank's part of the job-wide mean loss (the ranks' parts add up to it)
  bool finite = true;   // false: fp16 gradients overflowed, the step was skipped (the scale shrinks)
  double loss_scale = 0;  // the fp16 loss scale this step used (0: no scaling)
};

class TrainStep {
 public:
  // reducer: nullptr on one rank. channels_last: inputs go NHWC as the weights (GPUs).
  TrainStep(ResNet& model, torch::optim::Optimizer& optimizer, LossScaler& scaler, GradReducer* reducer,
            torch::Device device, Precision precision, double label_smoothing, bool channels_last);

  // groups: crops by size (augment_batch), any device; global_crops: the crops of the whole job's
  // batch (each rank divides its summed loss by it, so the ranks' gradients sum to the one-rank
  // mean whatever the split); lr: this step's learning rate.
  TrainStepResult operator()(const std::vector<CropGroup>& groups, double global_crops, double lr);

 private:
  ResNet& model_;
  torch::optim::Optimizer& optimizer_;
  LossScaler& scaler_;
  GradReducer* reducer_;
  torch::Device device_;
  Precision precision_;
  double label_smoothing_;
  bool channels_last_;
};

}  // namespace synth
