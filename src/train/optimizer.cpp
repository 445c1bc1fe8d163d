#include "train/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <vector>


namespace synth {

LrSchedule LrSchedule::from_config(const OptimConfig& optim, int64_t batch_size, int64_t total_steps) {
  LrSchedule s;
  s.peak = optim.lr * double(batch_size) / 256.0;
  s.floor = s.peak * optim.final_lr_fraction;
  s.total_steps = std::max<int64_t>(1, total_steps);
  s.warmup_steps = std::min<int64_t>(s.total_steps, int64_t(std::llround(optim.warmup_fraction * double(s.total_steps))));
  return s;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return peak * double(step + 1) / double(warmup_steps);
  const int64_t cosine_steps = total_steps - warmup_steps;
  const double progress = cosine_steps > 1 ? double(std::min(step - warmup_steps, cosine_steps - 1)) / double(cosine_steps - 1) : 0.0;
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

torch::Tensor ForeachSgd::step(LossClosure closure) {
  torch::Tensor loss;
  if (closure) {
    const torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  const torch::NoGradGuard no_grad;
  for (torch::optim::OptimizerParamGroup& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::SGDOptions&>(group.options());
    std::vector<torch::Tensor> params, grads;
    for (const torch::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      params.push_back(p);
      grads.push_back(p.grad());
    }
    if (params.empty()) continue;
    std::vector<torch::Tensor> update = o.weight_decay() != 0 ? at::_foreach_add(grads, params, o.weight_decay()) : grads;
    if (o.momentum() != 0) {
      // Buffers that exist take the momentum update in two launches; a parameter's first step
      // starts its buffer as a copy of d (torch.optim.SGD).
      std::vector<torch::Tensor> bufs(params.size()), old_bufs, old_updates;
      for (size_t i = 0; i < params.size(); ++i) {
        void* const key = params[i].unsafeGetTensorImpl();
        const auto it = state().find(key);
        if (it == state().end()) {
          bufs[i] = update[i].clone();
          auto st = std::make_unique<torch::optim::SGDParamState>();
          st->momentum_buffer(bufs[i]);
          state()[key] = std::move(st);
        } else {
          bufs[i] = static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer();
          old_bufs.push_back(bufs[i]);
          old_updates.push_back(update[i]);
        }
      }
      if (!old_bufs.empty()) {
        at::_foreach_mul_(old_bufs, o.momentum());
        at::_foreach_add_(old_bufs, old_updates, 1 - o.dampening());
      }
      update = o.nesterov() ? at::_foreach_add(update, bufs, o.momentum()) : bufs;
    }
    at::_foreach_add_(params, update, -o.lr());
  }
  return loss;
}

std::unique_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& module, const OptimConfig& optim) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    // Biases and BatchNorm's weight/bias are the 1-d parameters of a ResNet.
    const bool exempt = item.value().dim() <= 1 && !optim.decay_bn_and_bias;
    (exempt ? no_decay : decay).push_back(item.value());
  }
  using torch::optim::SGDOptions;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<SGDOptions>(SGDOptions(optim.lr).momentum(optim.momentum).weight_decay(optim.weight_decay)));
  if (!no_decay.empty())
    groups.emplace_back(no_decay, std::make_unique<SGDOptions>(SGDOptions(optim.lr).momentum(optim.momentum).weight_decay(0.0)));
  return std::make_unique<ForeachSgd>(std::move(groups), SGDOptions(optim.lr).momentum(optim.momentum));
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
}

}  // namespace synth
