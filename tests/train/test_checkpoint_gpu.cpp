// CUDA flavor only: a checkpoint of a CUDA model (channels-last, as the trainer keeps it) restores
// a CUDA model in place - weights and momentum stay on the GPU, in their layout - and loads into a
// CPU model (stream-eval / stream-export on a machine without a GPU). test_checkpoint.cpp covers
// the CPU side with a checkpoint that claims cuda:1.
#include <doctest/doctest.h>

#include <filesystem>

#include <torch/cuda.h>

#include "support/scratch_dir.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"

namespace {

using synth::ResNet;

// As the trainer places its model on a GPU (train/trainer.cpp).
void to_cuda_channels_last(ResNet& m) {
  m->to(torch::kCUDA);
  torch::NoGradGuard no_grad;
  for (torch::Tensor p : m->parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

void train_steps(ResNet& m, torch::optim::Optimizer& opt, int steps, int seed) {
  torch::manual_seed(seed);
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    const torch::Tensor x = torch::randn({4, 3, 32, 32}).to(torch::kCUDA);
    const torch::Tensor y = torch::tensor({0, 1, 2, 0}, torch::kInt64).to(torch::kCUDA);
    torch::nn::functional::cross_entropy(m->forward(x), y).backward();
    opt.step();
  }
}

// Parameters and buffers of b equal a's (on the CPU, whatever their devices); `tol` 0 = exactly.
bool same_state(ResNet& a, ResNet& b, double tol = 0) {
  auto same = [&](const torch::Tensor& x, const torch::Tensor& y) {
    const torch::Tensor xc = x.cpu(), yc = y.cpu();
    return tol == 0 || !xc.is_floating_point() ? torch::equal(xc, yc) : torch::allclose(xc, yc, tol, tol);
  };
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    if (!same(p.value(), pb[p.key()])) return false;
  auto bb = b->named_buffers();
  for (const auto& p : a->named_buffers())
    if (!same(p.value(), bb[p.key()])) return false;
  return true;
}

}  // namespace

TEST_CASE("gpu: a CUDA checkpoint restores a CUDA model in place and loads into a CPU model") {
  if (!torch::cuda::is_available()) return;
  synth::test::ScratchDir dir("checkpoint_gpu");
  const synth::ResNetSpec spec{"resnet18", 0.125, 3};
  synth::OptimConfig oc;
  torch::manual_seed(1);
  ResNet a(spec);
  to_cuda_channels_last(a);
  auto opt_a = synth::make_sgd(*a, oc);
  train_steps(a, *opt_a, 3, 10);
  synth::TrainState state;
  state.images_seen = 12;
  state.arch = "resnet18";
  state.width = 0.125;
  state.num_classes = 3;
  const std::filesystem::path file = synth::save_checkpoint(dir.path, state, *a, *opt_a, 2);

  torch::manual_seed(2);
  ResNet cpu(spec);
  synth::load_checkpoint(file, *cpu, nullptr, "resnet18", 0.125, 3);
  CHECK(same_state(a, cpu));
  for (const auto& p : cpu->parameters()) CHECK(p.device().is_cpu());

  ResNet b(spec);
  to_cuda_channels_last(b);
  auto opt_b = synth::make_sgd(*b, oc);
  train_steps(b, *opt_b, 1, 12);  // momentum of its own, which the checkpoint's replaces
  synth::load_checkpoint(file, *b, opt_b.get(), "resnet18", 0.125, 3);
  CHECK(same_state(a, b));
  for (const auto& p : b->parameters()) {
    CHECK(p.device().is_cuda());
    if (p.dim() == 4) CHECK(p.is_contiguous(torch::MemoryFormat::ChannelsLast));
  }
  // Momentum beside its parameter, in its layout.
  for (const auto& group : opt_b->param_groups())
    for (const torch::Tensor& p : group.params()) {
      const auto it = opt_b->state().find(p.unsafeGetTensorImpl());
      REQUIRE(it != opt_b->state().end());
      const torch::Tensor& m = static_cast<const torch::optim::SGDParamState&>(*it->second).momentum_buffer();
      CHECK(m.device() == p.device());
      if (p.dim() == 4) CHECK(m.is_contiguous(torch::MemoryFormat::ChannelsLast));
    }
  // The momentum came back: the next steps agree (cuDNN's backward may sum in another order).
  train_steps(a, *opt_a, 2, 11);
  train_steps(b, *opt_b, 2, 11);
  CHECK(same_state(a, b, 1e-5));
}
