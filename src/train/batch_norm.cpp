#include "train/batch_norm.hpp"

#include "distributed/comm.hpp"
#include "distributed/sync_batch_norm.hpp"

namespace synth {
namespace {
constexpr double kMomentum = 0.1, kEps = 1e-5;  // torch.nn.BatchNorm2d's defaults
}

BatchNorm2dImpl::BatchNorm2dImpl(int64_t channels) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
  running_mean = register_buffer("running_mean", torch::zeros({channels}));
  running_var = register_buffer("running_var", torch::ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& x) {
  if (is_training()) {
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  if (is_training() && group_ && group_->size() > 1)
    return sync_batch_norm(x, weight, bias, running_mean, running_var, kMomentum, kEps, *group_);
  return torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(), kMomentum, kEps,
                           at::globalContext().userEnabledCuDNN());
}

}  // namespace synth
