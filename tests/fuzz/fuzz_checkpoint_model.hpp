// The small model and optimizer of the checkpoint fuzzer and of its seed generator
// (make_checkpoint_seed.cpp): a parameter-only child (Linear), a child with buffers (BatchNorm1d,
// which copy_into reads with is_buffer = true) and SGD momentum state, the three kinds of records a
// training checkpoint holds, at a size that keeps the seed file a few kB.
#pragma once
#include <torch/torch.h>

#include <memory>

namespace fuzz {

struct CheckpointNetImpl : torch::nn::Module {
  CheckpointNetImpl() {
    fc = register_module("fc", torch::nn::Linear(2, 3));
    bn = register_module("bn", torch::nn::BatchNorm1d(3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return bn(fc(x)); }
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(CheckpointNet);

// What make_checkpoint_seed writes into the checkpoint's state and the fuzzer asks back.
constexpr const char* kCheckpointArch = "fuzz-linear-bn";
constexpr double kCheckpointWidth = 1.0;
constexpr int64_t kCheckpointClasses = 3;

inline std::unique_ptr<torch::optim::SGD> make_checkpoint_sgd(CheckpointNet& net) {
  return std::make_unique<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
}

}  // namespace fuzz
