#include "diffusion/sampler.hpp"

#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "diffusion/weights.hpp"

namespace synth {

StableDiffusion::StableDiffusion(const std::string& model_dir, torch::Device device, torch::Dtype dtype,
                                 size_t embedding_cache_bytes)
    : model_(load_model_dir(model_dir)),
      device_(device),
      dtype_(dtype),
      tokenizer_(model_.tokenizer_dir()),
      text_encoder_(load_text_encoder(model_.component_dir("text_encoder"))),
      unet_(load_unet(model_.component_dir("unet"))),
      vae_(load_vae_decoder(model_.component_dir("vae"))),
      cache_(embedding_cache_bytes) {
  if (dtype != torch::kFloat32 && dtype != torch::kFloat16 && dtype != torch::kBFloat16)
    throw InputError("sampler: dtype must be fp32, fp16 or bf16");
  if (dtype != torch::kFloat32 && device.is_cpu())
    throw InputError("sampler: half precision needs --device cuda (CPU kernels are fp32)");
  text_encoder_.to(device, dtype);
  unet_->to(device, dtype);
  vae_.to(device, dtype);
}

std::pair<int64_t, int64_t> StableDiffusion::latent_size(int64_t width, int64_t height) const {
  const int64_t f = vae_.upscale();
  if (width <= 0 || height <= 0 || width % f || height % f)
    throw InputError("image size " + std::to_string(width) + "x" + std::to_string(height) + " must be positive multiples of " +
                     std::to_string(f) + " (the VAE's upscale factor)");
  return {height / f, width / f};
}

torch::Tensor StableDiffusion::initial_noise(const std::vector<uint64_t>& indices, uint64_t seed, int64_t width,
                                             int64_t height) const {
  const auto [h, w] = latent_size(width, height);
  const int64_t c = model_.unet.in_channels, per_image = c * h * w;
  torch::Tensor noise = torch::empty({int64_t(indices.size()), c, h, w}, torch::kFloat32);
  float* p = noise.data_ptr<float>();
  for (size_t i = 0; i < indices.size(); ++i) {
    CounterRng rng(seed, indices[i], RngPurpose::kNoise);
    for (int64_t k = 0; k < per_image; ++k) p[i * per_image + k] = rng.normal();
  }
  return noise;
}

torch::Tensor StableDiffusion::embed(const std::vector<std::string>& prompts) {
  const auto parts = cache_.get_or_compute(prompts, [&](const std::vector<std::string>& misses) {
    torch::NoGradGuard no_grad;
    const auto ids = tokenizer_.encode_batch(misses);
    const torch::Tensor t = torch::tensor(ids, torch::kInt64).view({int64_t(misses.size()), -1}).to(device_);
    return text_encoder_.forward(t);
  });
  std::vector<torch::Tensor> rows;
  for (const auto& p : parts) rows.push_back(p.dim() == 2 ? p.unsqueeze(0) : p);
  return torch::cat(rows, 0);
}

torch::Tensor decoded_to_u8(const torch::Tensor& decoded) {
  const torch::Tensor x = decoded.to(torch::kFloat32);
  return ((x / 2 + 0.5).clamp(0, 1) * 255).round().to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

// GPU images reach the host through this sampler's pinned buffer: an asynchronous copy on the
// current stream, then a wait for that stream alone (a device-wide sync would also wait for the
// other generator threads and the trainer). CPU tensors are returned as they are.
torch::Tensor StableDiffusion::to_host(const torch::Tensor& u8) {
  if (u8.is_cpu()) return u8;
  const int64_t n = u8.numel();
  if (!host_pixels_.defined() || host_pixels_.numel() < n)
    host_pixels_ = torch::empty({n}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
  torch::Tensor host = host_pixels_.narrow(0, 0, n).view(u8.sizes());
  host.copy_(u8, /*non_blocking=*/true);
  c10::impl::VirtualGuardImpl(u8.device().type()).getStream(u8.device()).synchronize();
  return host;
}

SampleOutput StableDiffusion::sample(const std::vector<std::string>& prompts, const torch::Tensor& noise,
                                     const SamplerOptions& o) {
  torch::NoGradGuard no_grad;
  // The model's GPU is current for everything below, whichever GPU the calling thread had.
  c10::OptionalDeviceGuard device_guard;
  if (device_.is_cuda()) device_guard.reset_device(device_);
  const int64_t b = int64_t(prompts.size());
  if (b == 0) throw InputError("sampler: no prompts");
  const auto [h, w] = latent_size(o.width, o.height);
  if (noise.dim() != 4 || noise.size(0) != b || noise.size(1) != model_.unet.in_channels || noise.size(2) != h ||
      noise.size(3) != w)
    throw InputError("sampler: initial latents have shape " + std::string(c10::str(noise.sizes())) + ", expected [" +
                     std::to_string(b) + ", " + std::to_string(model_.unet.in_channels) + ", " + std::to_string(h) + ", " +
                     std::to_string(w) + "]");
  auto scheduler = make_scheduler(o.scheduler, model_.scheduler);
  scheduler->set_timesteps(o.steps);

  std::vector<std::string> pair(prompts.size(), "");  // unconditional half first, as diffusers orders it
  pair.insert(pair.end(), prompts.begin(), prompts.end());
  const torch::Tensor context = embed(pair);

  torch::Tensor x = noise.to(device_, torch::kFloat32) * scheduler->init_noise_sigma();
  for (const double t : scheduler->timesteps()) {
    const torch::Tensor in = scheduler->scale_model_input(torch::cat({x, x}, 0), t).to(dtype_);
    const torch::Tensor tt = torch::full({2 * b}, t, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
    const auto eps = unet_->forward(in, tt, context).to(torch::kFloat32).chunk(2, 0);
    const torch::Tensor guided = eps[0] + o.guidance * (eps[1] - eps[0]);
    x = scheduler->step(guided, t, x);
  }

  SampleOutput out;
  out.latents = x.to(torch::kCPU);
  const torch::Tensor decoded = vae_.decode(x.to(dtype_));
  if (o.keep_decoded) out.decoded = decoded.to(torch::kCPU, torch::kFloat32);
  // Converted where it was decoded: a quarter of the float32 bytes cross to the host.
  const torch::Tensor u8 = to_host(decoded_to_u8(decoded));
  for (int64_t i = 0; i < b; ++i) {
    ImageU8 img;
    img.height = int(u8.size(1));
    img.width = int(u8.size(2));
    img.channels = 3;
    const uint8_t* src = u8[i].data_ptr<uint8_t>();
    img.pixels.assign(src, src + img.bytes());
    out.images.push_back(std::move(img));
  }
  return out;
}

}  // namespace synth
