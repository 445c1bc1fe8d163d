#include "train/train_step.hpp"

#include "train/optimizer.hpp"

namespace synth {

TrainStep::TrainStep(ResNet& model, torch::optim::Optimizer& optimizer, LossScaler& scaler, GradReducer* reducer,
                     torch::Device device, Precision precision, double label_smoothing, bool channels_last)
    : model_(model), optimizer_(optimizer), scaler_(scaler), reducer_(reducer), device_(device), precision_(precision),
      label_smoothing_(label_smoothing), channels_last_(channels_last) {}

TrainStepResult TrainStep::operator()(const std::vector<CropGroup>& groups, double global_crops, double lr) {
  set_lr(optimizer_, lr);
  optimizer_.zero_grad();
  // Cross-entropy over every crop of every image (one forward per crop size, as DINO does).
  torch::Tensor loss;
  {
    const AutocastScope autocast(precision_, device_.type());
    for (const CropGroup& g : groups) {
      torch::Tensor input = g.images.to(device_);
      if (channels_last_) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
      // Autocast runs cross-entropy (log-softmax) in fp32.
      const torch::Tensor part = torch::nn::functional::cross_entropy(
          model_->forward(input), g.labels.to(device_),
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).label_smoothing(label_smoothing_));
      loss = loss.defined() ? loss + part : part;
    }
    loss = loss / global_crops;
  }
  if (reducer_) reducer_->prepare();
  scaler_.scale(loss).backward();
  if (reducer_) reducer_->finish();
  // Gradients are complete and identical on every rank here, so every rank skips alike.
  TrainStepResult r;
  r.loss_scale = scaler_.enabled() ? scaler_.value() : 0;
  r.finite = !scaler_.enabled() || scaler_.unscale(model_->parameters());
  if (r.finite) optimizer_.step();
  scaler_.update(r.finite);
  r.loss = loss.item<double>();
  return r;
}

}  // namespace synth
