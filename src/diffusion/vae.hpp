// The decoder half of Stable Diffusion's KL autoencoder (Rombach et al., CVPR 2022, Sec. 3.1):
// latents z [B, latent_channels, h, w] -> images [B, out_channels, h*2^(n-1), w*2^(n-1)] in about
// [-1, 1], n = len(block_out_channels). Architecture as diffusers' AutoencoderKL decoder:
// post_quant_conv (1x1), conv_in, mid-block (resnet, attention, resnet), the up blocks in reversed
// block_out_channels order (layers_per_block+1 resnets each, nearest x2 + conv in all but the
// last), GroupNorm, SiLU, conv_out. Module names equal the diffusers keys (loading: weights.hpp).
//
// AutoencoderKL is the whole autoencoder with both halves and autograd, for training a model
// (stream-sd-train): the encoder is diffusers' Encoder (conv_in, down blocks of layers_per_block
// resnets and a stride-2 conv padded (0,1,0,1) in all but the last, mid-block, GroupNorm, SiLU,
// conv_out to 2 x latent_channels) then quant_conv, giving the mean and log-variance of a diagonal
// Gaussian posterior (Kingma & Welling 2014; Rombach et al. 2022, Sec. 3.1 "KL-reg").
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "diffusion/model_config.hpp"

namespace synth {

class VaeModel;  // the torch::nn::Module tree (vae.cpp)

// The posterior q(z | x) = N(mean, exp(logvar)) of unscaled latents; logvar clamped to [-30, 20]
// as diffusers' DiagonalGaussianDistribution does.
struct LatentPosterior {
  torch::Tensor mean, logvar;
  // KL(q || N(0, I)) per image, summed over latent elements: 0.5 sum(mean^2 + var - 1 - logvar).
  torch::Tensor kl() const;
};

class VaeDecoder {
 public:
  explicit VaeDecoder(const VaeConfig& config);  // random initialisation; load_vae_decoder (weights.hpp) loads

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

class AutoencoderKL {
 public:
  explicit AutoencoderKL(const VaeConfig& config);  // random initialisation; load_autoencoder (weights.hpp) loads

  // x: images in [-1, 1], [B, in_channels, H, W] -> posterior of the UNSCALED latents
  // [B, latent_channels, H/f, W/f]. With autograd.
  LatentPosterior encode(const torch::Tensor& x);
  // Unscaled latents -> decoder(post_quant_conv(z)), with autograd.
  torch::Tensor decode(const torch::Tensor& z);

  const VaeConfig& config() const { return config_; }
  torch::nn::Module& module();

 private:
  VaeConfig config_;
  std::shared_ptr<VaeModel> model_;
};

}  // namespace synth
