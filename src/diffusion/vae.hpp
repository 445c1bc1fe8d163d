// The decoder half of Stable Diffusion's KL autoencoder (Rombach et al., CVPR 2022, Sec. 3.1):
// latents z [B, latent_channels, h, w] -> images [B, out_channels, h*2^(n-1), w*2^(n-1)] in about
// [-1, 1], n = len(block_out_channels). Architecture as diffusers' AutoencoderKL decoder:
// post_quant_conv (1x1), conv_in, mid-block (resnet, attention, resnet), the up blocks in reversed
// block_out_channels order (layers_per_block+1 resnets each, nearest x2 + conv in all but the
// last), GroupNorm, SiLU, conv_out. Module names equal the diffusers keys; the encoder's tensors
// (encoder.*, quant_conv.*) are accepted and ignored when loading, everything else is strict.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "diffusion/model_config.hpp"

namespace synth {

class VaeModel;  // the torch::nn::Module tree (vae.cpp)

class VaeDecoder {
 public:
  explicit VaeDecoder(const VaeConfig& config);  // random initialisation
  // <sd>/vae: config.json + diffusion_pytorch_model.safetensors, strictly loaded.
  static VaeDecoder load(const std::string& dir);

  // z: scaled latents as the sampler produces them. Computes decoder(post_quant_conv(z /
  // scaling_factor)), as diffusers' SD v1 pipeline does, and returns the image before
  // clamping, in the weights' dtype/device. Runs without autograd.
  torch::Tensor decode(const torch::Tensor& z) const;
  // Pixel upsampling factor of the decoder: 2^(len(block_out_channels) - 1).
  int64_t upscale() const;

  const VaeConfig& config() const { return config_; }
  torch::nn::Module& module();
  void to(torch::Device device, torch::Dtype dtype = torch::kFloat32);

 private:
  VaeConfig config_;
  std::shared_ptr<VaeModel> model_;
};

}  // namespace synth
