// The conditional U-Net of Stable Diffusion v1 (diffusers UNet2DConditionModel; Rombach et al.,
// CVPR 2022, Sec. 3.3 and App. E): a DDPM U-Net whose attention levels hold spatial transformers
// (self-attention, cross-attention to the CLIP text states, GEGLU feed-forward). Every size comes
// from unet/config.json; module names mirror the diffusers keys, so weights load by identity:
//   conv_in, time_embedding.linear_{1,2}, down_blocks.i.{resnets,attentions}.j, down_blocks.i.downsamplers.0.conv,
//   mid_block.{resnets.0,attentions.0,resnets.1}, up_blocks.i.{resnets,attentions}.j, up_blocks.i.upsamplers.0.conv,
//   conv_norm_out, conv_out; attentions.j = {norm, proj_in, transformer_blocks.k.{norm1,attn1,norm2,attn2,norm3,
//   ff.net.0.proj,ff.net.2}, proj_out}, attn = {to_q, to_k, to_v, to_out.0}.
//
// FLOPs (SD v1.4 at 64x48 latents): about 0.58 TFLOP per image per step; a guided pair doubles it.
#pragma once
#include <string>

#include <torch/torch.h>

#include "diffusion/model_config.hpp"

namespace synth {

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);
  // sample [B, in, h, w]; timesteps: a scalar or [B] tensor (any dtype; Euler's may be fractional);
  // encoder_hidden_states [B, L, cross_attention_dim]. Returns the predicted noise [B, out, h, w].
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                        const torch::Tensor& encoder_hidden_states);
  const UNetConfig& config() const { return config_; }

 private:
  UNetConfig config_;
  // Block types are private to unet.cpp; forward() casts back with as<>().
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::shared_ptr<torch::nn::Module> time_embedding, mid_block;
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(UNet);

}  // namespace synth
