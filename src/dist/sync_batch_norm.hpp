// Batch normalization whose batch statistics are those of the global batch over all ranks of a
// group (Ioffe & Szegedy 2015, Eq. 1-4; the cross-GPU form of torch.nn.SyncBatchNorm), so T ranks
// with B/T images each normalize exactly as one rank with B images does.
//
// Forward: each rank computes, per channel, its count n_r, mean m_r and sum of squared deviations
// M2_r in fp32; one all-gather brings every rank's triple, combined exactly by Chan et al.'s
// parallel variance formula (M2 = sum M2_r + n_r (m_r - m)^2), which does not cancel the way
// E[x^2] - E[x]^2 does. Backward: one all-reduce of sum(dy) and sum(dy * (x - m)) per channel;
//   dx = w / s * (dy - sum(dy) / n - (x - m) / s^2 * sum(dy (x - m)) / n),  s = sqrt(var + eps),
// the standard batch-norm gradient with global sums. The weight and bias gradients are the
// rank's local sums: the gradient reducer adds them over ranks like every other parameter's.
// Running statistics use the unbiased global variance, as PyTorch's BatchNorm does.
#pragma once
#include <torch/torch.h>

#include "dist/comm.hpp"

namespace synth {

// x: N x C x ... (any layout, e.g. channels-last; fp32/fp16/bf16: statistics in fp32, output in
// x's dtype). Training mode: updates running_mean/running_var in place (momentum as in PyTorch).
// `comm` must outlive the backward pass.
torch::Tensor sync_batch_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              torch::Tensor running_mean, torch::Tensor running_var, double momentum, double eps,
                              Comm& comm);

}  // namespace synth
