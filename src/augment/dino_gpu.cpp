#include "augment/dino_gpu.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "dino_crop.cuh"

namespace synth {
namespace {

void check_cuda(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) throw Error("dino_augment_gpu: " + what + ": " + cudaGetErrorString(err));
}

// One launch for all crops of one size (globals or locals) of the batch.
torch::Tensor launch_group(const std::vector<kernels::DinoCropDesc>& descs, const std::vector<DinoBox>& boxes, int size,
                           const float mean[3], const float std[3], torch::Dtype dtype, const torch::Device& device) {
  const int64_t n = int64_t(descs.size());
  torch::Tensor out = torch::empty({n, size, size, 3}, torch::TensorOptions().dtype(dtype).device(device));
  if (n == 0) return out.permute({0, 3, 1, 2});
  int max_taps = 1;
  for (const DinoBox& b : boxes)
    max_taps = std::max({max_taps, kernels::dino_resample_taps(b.width, size), kernels::dino_resample_taps(b.height, size)});
  const size_t bytes = kernels::dino_crop_workspace_bytes(int(n), size, max_taps);
  torch::Tensor workspace = torch::empty({int64_t(bytes)}, torch::TensorOptions().dtype(torch::kUInt8).device(device));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(device.index()).stream();
  check_cuda(kernels::dino_crop_launch(descs.data(), int(n), size, mean, std, out.data_ptr(),
                                       dtype == torch::kFloat16 ? kernels::DinoOutType::kFloat16 : kernels::DinoOutType::kFloat32,
                                       workspace.data_ptr(), bytes, max_taps, stream),
             "crop launch (" + std::to_string(n) + " crops of " + std::to_string(size) + ")");
  // The workspace returns to the caching allocator on return; it was allocated on this stream, so
  // any reuse is ordered after the kernel.
  return out.permute({0, 3, 1, 2});
}

kernels::DinoCropDesc describe(const torch::Tensor& src, const DinoCropParams& p) {
  kernels::DinoCropDesc d;
  d.src = src.data_ptr<uint8_t>();
  d.src_height = int(src.size(0));
  d.src_width = int(src.size(1));
  d.box_top = p.box.top;
  d.box_left = p.box.left;
  d.box_height = p.box.height;
  d.box_width = p.box.width;
  d.flip = p.flip ? 1 : 0;
  d.jitter_ops = p.jitter ? p.jitter_ops : 0;
  for (int k = 0; k < 4; ++k) d.jitter_order[k] = p.jitter_order[size_t(k)];
  d.brightness = p.brightness;
  d.contrast = p.contrast;
  d.saturation = p.saturation;
  d.hue = p.hue;
  d.grayscale = p.grayscale ? 1 : 0;
  d.sigma = p.blur ? p.sigma : 0.0f;
  d.solarize = p.solarize ? 1 : 0;
  return d;
}

}  // namespace

DinoGpuBatch dino_augment_gpu(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                              const std::vector<torch::Tensor>& sources,
                              const std::vector<std::vector<DinoCropParams>>& params, torch::Dtype out_dtype) {
  validate_dino_config(cfg);
  if (out_dtype != torch::kFloat16 && out_dtype != torch::kFloat32)
    throw Error("dino_augment_gpu: output dtype must be float16 or float32");
  if (mean.size() != 3 || std.size() != 3) throw InputError("DINO normalization needs 3 means and 3 stds (augment.mean, augment.std)");
  if (sources.size() != params.size() || sources.empty())
    throw Error("dino_augment_gpu: " + std::to_string(sources.size()) + " sources but " + std::to_string(params.size()) +
                " parameter lists");
  // The kernels run on the sources' GPU (the descriptor upload and the launches use the current
  // device), whatever GPU the calling thread had current.
  const torch::Device device = sources[0].device();
  if (!device.is_cuda()) throw Error("dino_augment_gpu: source 0 is on " + device.str() + ", not on a CUDA device");
  const c10::cuda::CUDAGuard guard(device);
  const int G = cfg.global_crops, L = cfg.local_crops;
  std::vector<kernels::DinoCropDesc> gd, ld;
  std::vector<DinoBox> gb, lb;
  for (size_t b = 0; b < sources.size(); ++b) {
    const torch::Tensor& s = sources[b];
    if (!s.is_cuda() || s.device() != device || s.scalar_type() != torch::kUInt8 || s.dim() != 3 || s.size(2) != 3 ||
        !s.is_contiguous())
      throw Error("dino_augment_gpu: source " + std::to_string(b) + " must be a contiguous uint8 HxWx3 tensor on " +
                  device.str());
    if (int(params[b].size()) != G + L)
      throw Error("dino_augment_gpu: image " + std::to_string(b) + " has " + std::to_string(params[b].size()) +
                  " crop parameters, expected " + std::to_string(G + L));
    for (const DinoCropParams& p : params[b]) {
      const bool local = p.crop >= G;
      (local ? ld : gd).push_back(describe(s, p));
      (local ? lb : gb).push_back(p.box);
    }
  }
  float m[3], sd[3];
  for (int c = 0; c < 3; ++c) m[c] = float(mean[size_t(c)]), sd[c] = float(std[size_t(c)]);
  DinoGpuBatch out;
  out.global = launch_group(gd, gb, cfg.global_size, m, sd, out_dtype, device);
  out.local = launch_group(ld, lb, cfg.local_size, m, sd, out_dtype, device);
  return out;
}

DinoGpuBatch dino_augment_gpu(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                              const std::vector<const ImageU8*>& images,
                              const std::vector<std::vector<DinoCropParams>>& params, torch::Dtype out_dtype,
                              const torch::Device& device) {
  if (!device.is_cuda()) throw Error("dino_augment_gpu: " + device.str() + " is not a CUDA device");
  std::vector<torch::Tensor> sources;
  sources.reserve(images.size());
  for (const ImageU8* img : images) {
    if (img->channels != 3 || img->pixels.size() != img->bytes())
      throw Error("dino_augment_gpu: expected RGB images with height*width*3 bytes");
    sources.push_back(torch::from_blob(const_cast<uint8_t*>(img->pixels.data()), {img->height, img->width, 3}, torch::kUInt8)
                          .to(device));
  }
  return dino_augment_gpu(cfg, mean, std, sources, params, out_dtype);
}

}  // namespace synth
