// CUDA flavor only: the loss scaler's fused unscale on the GPU (GradScaler's multi-tensor kernel)
// against its CPU reference path, on the same gradients, with and without a non-finite value.
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include <torch/cuda.h>
#include "train/amp.hpp"

namespace {

// Zero parameters on `device` whose gradients are copies of grads.
std::vector<torch::Tensor> params_with_grads(const std::vector<torch::Tensor>& grads, const torch::Device& device) {
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& g : grads) {
    torch::Tensor p = torch::zeros_like(g).to(device).requires_grad_(true);
    p.mutable_grad() = g.to(device).clone();
    params.push_back(p);
  }
  return params;
}

}  // namespace

TEST_CASE("amp: the GPU unscale equals the CPU reference and flags overflow alike") {
  torch::manual_seed(3);
  std::vector<torch::Tensor> grads;
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{64, 3, 7, 7}, {64}, {1000, 2048}, {17}})
    grads.push_back(torch::randn(shape) * 1000);
  const synth::LossScaler scaler(true, 1024.0);
  for (const bool overflow : {false, true}) {
    CAPTURE(overflow);
    std::vector<torch::Tensor> g = grads;
    if (overflow) {
      g[2] = g[2].clone();
      g[2][5][7] = std::numeric_limits<float>::infinity();
    }
    const auto cpu = params_with_grads(g, torch::kCPU);
    const auto gpu = params_with_grads(g, torch::Device(torch::kCUDA));
    CHECK(scaler.unscale(cpu) == !overflow);
    CHECK(scaler.unscale(gpu) == !overflow);
    if (overflow) continue;
    for (size_t i = 0; i < g.size(); ++i) {
      CAPTURE(i);
      CHECK(torch::allclose(gpu[i].grad().to(torch::kCPU), cpu[i].grad(), 1e-6, 0));
      CHECK(torch::allclose(cpu[i].grad(), g[i] / 1024, 1e-6, 0));
    }
  }
}
