// The one place that knows LibTorch versions apart: the CPU flavor builds against Debian's
// LibTorch 1.13, the CUDA flavor against LibTorch 2.x. Everything else calls these wrappers.
#pragma once
#include <ATen/autocast_mode.h>
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

// Autocast on/off and its lower-precision dtype for one device type: LibTorch 2.4 made these
// per-device-type calls; 1.13 has one pair for CUDA ("gpu") and one for the CPU.
inline void set_autocast(torch::DeviceType device, bool enabled, torch::ScalarType dtype) {
#if SYNTH_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == torch::kCUDA) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

inline bool autocast_enabled(torch::DeviceType device) {
#if SYNTH_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

// The key of a parameter's entry in torch::optim::Optimizer::state(): LibTorch 2.x keys it by the
// TensorImpl pointer, 1.13 by that pointer printed as a string.
#if SYNTH_TORCH_AT_LEAST(2, 0)
inline void* optimizer_state_key(const torch::Tensor& p) { return p.unsafeGetTensorImpl(); }
#else
inline std::string optimizer_state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }
#endif

}  // namespace synth::compat

// c10d: from LibTorch 2.0 a backend (ProcessGroupGloo, ProcessGroupNCCL) derives from
// c10d::Backend and its futures are c10d::Work; in 1.13 both derive from c10d::ProcessGroup. The
// collective calls themselves are the same. Only src/dist includes c10d headers, before this one.
#if defined(SYNTH_C10D_COMPAT)
namespace synth::compat {
#if SYNTH_TORCH_AT_LEAST(2, 0)
using C10dGroup = c10d::Backend;
#else
using C10dGroup = c10d::ProcessGroup;
#endif
using C10dWork = c10d::Work;

}  // namespace synth::compat
#endif  // SYNTH_C10D_COMPAT
