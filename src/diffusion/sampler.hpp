// The guided Stable Diffusion v1 sampler (Rombach et al. 2022) with classifier-free guidance
// (Ho & Salimans 2022): eps = eps(x, empty) + g (eps(x, prompt) - eps(x, empty)), both halves in
// one U-Net call on the concatenated batch, the unconditional embedding computed once.
//
// Image i of a run starts from N(0, I) latents drawn from CounterRng(seed, i, kNoise) on the host,
// so it is identical whatever its batch, batch position, device or number of GPUs. Weights run in
// the requested dtype (fp16 on CUDA); latents and the scheduler arithmetic stay float32.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "diffusion/model_config.hpp"
#include "diffusion/scheduler.hpp"
#include "diffusion/unet.hpp"
#include "diffusion/vae.hpp"
#include "io/image.hpp"
#include "text/clip_text_encoder.hpp"
#include "text/embedding_cache.hpp"
#include "text/tokenizer.hpp"

namespace synth {

struct SamplerOptions {
  std::string scheduler = "pndm";  // pndm | ddim | dpmpp2m | euler
  int64_t steps = 50;
  double guidance = 7.5;
  int64_t width = 512, height = 384;  // pixels; multiples of the VAE's upscale factor
  // Copy the float32 VAE output to the host (SampleOutput::decoded): for tests and stream-sample.
  // The generator turns it off, so on a GPU only the uint8 images cross to the host.
  bool keep_decoded = true;
};

struct SampleOutput {
  torch::Tensor latents;  // final latents before decoding, float32 CPU [B, C, h, w]
  torch::Tensor decoded;  // VAE output in [-1, 1] before clamping, float32 CPU [B, 3, H, W] (if keep_decoded)
  std::vector<ImageU8> images;  // decoded_to_u8 of the VAE output, HWC RGB
};

// The 8-bit images of VAE outputs [B, 3, H, W] in [-1, 1] (any float dtype, any device), on the
// same device: uint8 [B, H, W, 3] = round((x / 2 + 0.5).clamp(0, 1) * 255) in float32, rounding
// half to even (torch.round). The one conversion for CPU and GPU, so both make the same pixels.
torch::Tensor decoded_to_u8(const torch::Tensor& decoded);

class StableDiffusion {
 public:
  // Loads tokenizer/, text_encoder/, unet/, vae/ and scheduler/ of a diffusers SD v1 directory.
  StableDiffusion(const std::string& model_dir, torch::Device device, torch::Dtype dtype,
                  size_t embedding_cache_bytes = size_t(256) << 20);

  // Latent size for an image size; InputError naming `what` if not a multiple of the upscale.
  std::pair<int64_t, int64_t> latent_size(int64_t width, int64_t height) const;
  // N(0, I) latents of the given global image indices (float32 CPU, [B, C, h, w]).
  torch::Tensor initial_noise(const std::vector<uint64_t>& indices, uint64_t seed, int64_t width, int64_t height) const;
  // Text-encoder outputs for prompts, through the prompt-embedding cache ([B, 77, C], model dtype).
  torch::Tensor embed(const std::vector<std::string>& prompts);
  // Runs the guided sampler from `noise` (unit-variance latents; multiplied by the scheduler's
  // init_noise_sigma here, as the diffusers pipeline does) for one prompt per image. On a GPU it
  // runs on the calling thread's current stream of the model's device and waits for that stream
  // only (a generator thread sets its own: generate/generator.cpp).
  SampleOutput sample(const std::vector<std::string>& prompts, const torch::Tensor& noise, const SamplerOptions& options);

  const SdModelDir& model() const { return model_; }
  torch::Device device() const { return device_; }
  int64_t upscale() const { return vae_.upscale(); }  // pixels per latent cell
  const EmbeddingCache& cache() const { return cache_; }

 private:
  torch::Tensor to_host(const torch::Tensor& u8);

  SdModelDir model_;
  torch::Device device_;
  torch::Dtype dtype_;
  ClipTokenizer tokenizer_;
  ClipTextEncoder text_encoder_;
  UNet unet_{nullptr};
  VaeDecoder vae_;
  EmbeddingCache cache_;
  // CUDA only: page-locked staging for the uint8 images, reused by every call (one sampler per
  // generator thread, so one buffer per thread); grows to the largest batch seen.
  torch::Tensor host_pixels_;
};

}  // namespace synth
