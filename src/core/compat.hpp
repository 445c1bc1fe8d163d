// The one place that knows LibTorch versions apart: the CPU flavor builds against Debian's
// LibTorch 1.13, the CUDA flavor against LibTorch 2.x. Everything else calls these wrappers.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

#define SYNTH_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace synth::compat {

// Fused scaled-dot-product attention exists from LibTorch 2.0; 1.13 gets the plain formula
// softmax(q k^T / sqrt(d) + mask) v. q, k, v: [..., L, d].
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, bool causal = false) {
#if SYNTH_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, causal);
#else
  const double scale = 1.0 / std::sqrt(double(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (causal) {
    const int64_t lq = q.size(-2), lk = k.size(-2);
    auto mask = torch::ones({lq, lk}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu(1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

inline bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace synth::compat
