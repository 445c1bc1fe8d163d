// Convolutional building blocks shared by the SD v1 U-Net and the VAE decoder (Rombach et al.,
// "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022; the blocks follow the
// DDPM U-Net of Ho et al. 2020, App. B). Submodule names mirror the diffusers keys so that
// load_module_weights maps them by identity:
//   ResnetBlock2D   norm1, conv1, time_emb_proj (if temb_channels > 0), norm2, conv2, conv_shortcut (if in != out)
//   Upsample2D      conv                      (nearest x2, then 3x3 conv)
//   Downsample2D    conv                      (3x3 conv, stride 2)
//   VaeAttention    group_norm, to_q, to_k, to_v, to_out.0   (spatial self-attention with residual)
// The U-Net's transformer / cross-attention blocks live with the U-Net, not here.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <vector>

namespace synth {

struct ResnetBlock2DOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t temb_channels = 0;  // 0: no time-embedding projection (VAE)
  int64_t groups = 32;
  double eps = 1e-6;
  double output_scale_factor = 1.0;
};

// x + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))), the skip through a 1x1
// conv_shortcut when the channel count changes; divided by output_scale_factor.
class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetBlock2DOptions& options);
  // temb: [B, temb_channels] or undefined (required iff temb_channels > 0).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {});
  const ResnetBlock2DOptions& options() const { return options_; }

 private:
  ResnetBlock2DOptions options_;
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  torch::nn::Linear time_emb_proj{nullptr};
};
TORCH_MODULE(ResnetBlock2D);

// Nearest-neighbour x2 (or to `size`, which the U-Net passes when a skip connection has an odd
// size), then a 3x3 convolution.
class Upsample2DImpl : public torch::nn::Module {
 public:
  Upsample2DImpl(int64_t channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x, std::optional<std::vector<int64_t>> size = std::nullopt);

 private:
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

// 3x3 convolution with stride 2. padding 0 pads (0, 1, 0, 1) first, as diffusers does.
class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, int64_t out_channels, int64_t padding = 1);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t padding_;
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample2D);

// Self-attention over the H*W positions of a feature map, as the VAE mid-block uses it (diffusers
// Attention with residual_connection, attention_head_dim = channels: one head of width C).
// out = x + to_out(softmax(q k^T / sqrt(d)) v) with q, k, v from group_norm(x).
class VaeAttentionImpl : public torch::nn::Module {
 public:
  VaeAttentionImpl(int64_t channels, int64_t groups, double eps, int64_t heads = 1);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t channels_, heads_;
  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};
  torch::nn::Linear out_proj_{nullptr};  // to_out[0], kept typed for forward()
};
TORCH_MODULE(VaeAttention);

}  // namespace synth
