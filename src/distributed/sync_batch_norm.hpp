// Batch normalization whose batch statistics are those of the global batch over all ranks of a
// group (Ioffe & Szegedy 2015, Eq. 1-4), computed as torch.nn.SyncBatchNorm does
// (torch/nn/modules/_functions.py), so T ranks with B/T images each normalize exactly as one rank
// with B images does.
//
// Forward: each rank computes per channel its mean and invstd = 1/sqrt(var + eps) (biased var);
// one all-gather brings every rank's [mean, invstd, count]; they are combined exactly by Chan et
// al.'s parallel variance formula (M2 = sum M2_r + n_r (m_r - m)^2 with M2_r = n_r var_r), which
// does not cancel the way E[x^2] - E[x]^2 does; then y = (x - m) * invstd * w + b. Backward: one
// all-reduce of sum(dy) and sum(dy * (x - m)) per channel;
//   dx = w * invstd * (dy - sum(dy) / n - (x - m) * invstd^2 * sum(dy (x - m)) / n),
// the standard batch-norm gradient with global sums. The weight and bias gradients are the
// rank's local sums: the gradient reducer adds them over ranks like every other parameter's.
// Running statistics use the unbiased global variance M2 / (n - 1), as PyTorch's BatchNorm does.
//
// No step reads a value back to the host: counts stay tensors on x's device (one host sync per
// layer would stall the GPU ~100 times per ResNet-50 step).
//
// Numerics contract: statistics in fp32 (x of fp32/fp16/bf16; fp64 for fp64), output and input
// gradient in x's dtype and layout (any layout, e.g. channels-last), weight/bias optional, their
// gradients in their own dtype. Every rank needs at least one value per channel (StreamShard
// never leaves a rank without images); a global count of 1 gives an infinite running variance,
// as torch's kernels do.
#pragma once
#include <tuple>

#include <torch/torch.h>

#include "distributed/comm.hpp"

namespace synth {

// x: N x C x ... Training mode: updates running_mean/running_var in place (momentum as in
// PyTorch). `comm` must outlive the backward pass.
torch::Tensor sync_batch_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              torch::Tensor running_mean, torch::Tensor running_var, double momentum, double eps,
                              Comm& comm);

// The five per-device steps sync_batch_norm is made of, with exactly the semantics of the ATen ops
// of the same names (which torch.nn.SyncBatchNorm uses and which exist for CUDA tensors only). On
// CUDA tensors they call those ops; on CPU tensors a plain-torch twin (cpu_*) computes the same.
// Undefined tensors stand for absent optional arguments / results.
namespace bn {

// Per-channel mean and 1/sqrt(biased var + eps) of x (N x C x ...), in fp32 for reduced floats.
std::tuple<torch::Tensor, torch::Tensor> stats(const torch::Tensor& x, double eps);
// Global mean and invstd from every rank's mean/invstd rows (R x C) and counts (R, in the running
// statistics' dtype); updates the running statistics in place (unbiased variance).
std::tuple<torch::Tensor, torch::Tensor> gather_stats_with_counts(const torch::Tensor& x, const torch::Tensor& mean,
                                                                  const torch::Tensor& invstd,
                                                                  const torch::Tensor& running_mean,
                                                                  const torch::Tensor& running_var, double momentum,
                                                                  double eps, const torch::Tensor& counts);
// (x - mean) * invstd * weight + bias, in x's dtype and memory format.
torch::Tensor elemt(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                    const torch::Tensor& mean, const torch::Tensor& invstd, double eps);
// (sum dy, sum dy (x - mean), grad_weight = sum dy (x - mean) * invstd, grad_bias = sum dy); each
// result only when its flag asks for it.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> backward_reduce(
    const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
    const torch::Tensor& weight, bool input_g, bool weight_g, bool bias_g);
// dx from the global sums; `counts` (int32, R) are the ranks' counts, n = their sum.
torch::Tensor backward_elemt(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean,
                             const torch::Tensor& invstd, const torch::Tensor& weight, const torch::Tensor& sum_dy,
                             const torch::Tensor& sum_dy_xmu, const torch::Tensor& counts);

// The CPU twins (public so that tests can hold the CUDA ops against them on the same data).
std::tuple<torch::Tensor, torch::Tensor> cpu_stats(const torch::Tensor& x, double eps);
std::tuple<torch::Tensor, torch::Tensor> cpu_gather_stats_with_counts(const torch::Tensor& x, const torch::Tensor& mean,
                                                                      const torch::Tensor& invstd,
                                                                      const torch::Tensor& running_mean,
                                                                      const torch::Tensor& running_var,
                                                                      double momentum, double eps,
                                                                      const torch::Tensor& counts);
torch::Tensor cpu_elemt(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                        const torch::Tensor& mean, const torch::Tensor& invstd, double eps);
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> cpu_backward_reduce(
    const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
    const torch::Tensor& weight, bool input_g, bool weight_g, bool bias_g);
torch::Tensor cpu_backward_elemt(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean,
                                 const torch::Tensor& invstd, const torch::Tensor& weight, const torch::Tensor& sum_dy,
                                 const torch::Tensor& sum_dy_xmu, const torch::Tensor& counts);

}  // namespace bn
}  // namespace synth
