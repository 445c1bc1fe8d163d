// BatchNorm2d with torch.nn.BatchNorm2d's parameter and buffer names (weight, bias, running_mean,
// running_var, num_batches_tracked; momentum 0.1, eps 1e-5), so state_dict keys stay torchvision's,
// and one switch: given a group of trainer ranks it normalizes training batches with the global
// batch's statistics (SyncBN, distributed/sync_batch_norm.hpp), as the paper's multi-GPU training did.
// Evaluation always uses the running statistics, which SyncBN keeps identical on every rank.
#pragma once
#include <torch/torch.h>

namespace synth {
class Comm;

class BatchNorm2dImpl : public torch::nn::Module {
 public:
  explicit BatchNorm2dImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  // nullptr or a one-rank group: local statistics. The group must outlive training.
  void set_group(Comm* group) { group_ = group; }

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  Comm* group_ = nullptr;
};
TORCH_MODULE(BatchNorm2d);

}  // namespace synth
