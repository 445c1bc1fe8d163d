#include "augment/train_augment.hpp"

#include <cstring>

#include "augment/dino_cpu.hpp"
#include "core/error.hpp"
#ifdef SYNTH_WITH_CUDA
#include "augment/dino_gpu.hpp"
#endif

namespace synth {
namespace {

std::vector<CropGroup> dino_groups(const Config& cfg, const torch::Tensor& global, const torch::Tensor& local,
                                   const torch::Tensor& y) {
  std::vector<CropGroup> groups;
  groups.push_back({global, y.repeat_interleave(cfg.augment.dino.global_crops)});
  if (cfg.augment.dino.local_crops > 0 && local.defined() && local.numel() > 0)
    groups.push_back({local, y.repeat_interleave(cfg.augment.dino.local_crops)});
  return groups;
}

#ifdef SYNTH_WITH_CUDA
// The batch's pixels go up in one copy from a pinned staging buffer (one transfer instead of one
// per image); each image is then a view of its bytes, which the crop kernels read in place.
DinoGpuBatch dino_on_device(const Config& cfg, uint64_t seed, const std::vector<ImageView>& views,
                            const torch::Device& device, torch::Dtype dtype) {
  int64_t total = 0;
  for (const ImageView& v : views) {
    if (v.channels != 3) throw InputError("DINO augmentation needs RGB images; image " + std::to_string(v.index) +
                                          " has " + std::to_string(v.channels) + " channels");
    total += int64_t(v.height) * v.width * 3;
  }
  const torch::Tensor host = torch::empty({total}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
  int64_t offset = 0;
  for (const ImageView& v : views) {
    const int64_t bytes = int64_t(v.height) * v.width * 3;
    std::memcpy(host.data_ptr<uint8_t>() + offset, v.pixels, size_t(bytes));
    offset += bytes;
  }
  // Non-blocking from pinned memory: the caching host allocator keeps `host` until the copy is done.
  const torch::Tensor all = host.to(device, torch::kUInt8, /*non_blocking=*/true);
  std::vector<torch::Tensor> sources;
  std::vector<std::vector<DinoCropParams>> params;
  offset = 0;
  for (const ImageView& v : views) {
    const int64_t bytes = int64_t(v.height) * v.width * 3;
    sources.push_back(all.narrow(0, offset, bytes).view({v.height, v.width, 3}));
    params.push_back(draw_dino_params(cfg.augment.dino, seed, v.index, v.height, v.width));
    offset += bytes;
  }
  return dino_augment_gpu(cfg.augment.dino, cfg.augment.mean, cfg.augment.std, sources, params, dtype);
}
#endif

}  // namespace

// bf16 training gets fp16 crops: the kernels have no bf16 output, and fp16 loses nothing bf16
// would keep (normalized pixels, |x| < 3, are far inside fp16's range, and its 11-bit significand
// is finer than bf16's 8), while it halves the crop writes and the crop batch's memory against
// fp32. Autocast casts them to bf16 at the first convolution, as it would fp32 crops.
torch::Dtype gpu_crop_dtype(const std::string& precision) {
  if (precision == "fp32") return torch::kFloat32;
  if (precision == "fp16" || precision == "bf16") return torch::kFloat16;
  throw InputError("train.precision = \"" + precision + "\" is not one of fp32 | fp16 | bf16");
}

ImageU8 copy_image(const ImageView& v) {
  ImageU8 im;
  im.height = v.height;
  im.width = v.width;
  im.channels = v.channels;
  im.pixels.assign(v.pixels, v.pixels + im.bytes());
  return im;
}

std::vector<CropGroup> augment_batch(const Config& cfg, uint64_t seed, const std::vector<ImageView>& views,
                                     const std::vector<int64_t>& labels, const torch::Device& device,
                                     torch::Dtype gpu_dtype) {
  const torch::Tensor y = torch::tensor(labels, torch::kInt64);
  if (cfg.augment.kind == "simple") return {{simple_augment_batch(cfg.augment, seed, views), y}};
  if (device.is_cuda()) {
#ifdef SYNTH_WITH_CUDA
    const DinoGpuBatch b = dino_on_device(cfg, seed, views, device, gpu_dtype);
    return dino_groups(cfg, b.global, b.local, y);
#else
    throw Error("DINO augmentation on " + device.str() + " needs the CUDA flavor (-DSYNTH_CUDA=ON)");
#endif
  }
  // The DINO CPU reference takes whole images; copy the slots.
  std::vector<ImageU8> images;
  std::vector<const ImageU8*> pointers;
  std::vector<uint64_t> indices;
  images.reserve(views.size());
  for (const ImageView& v : views) {
    images.push_back(copy_image(v));
    pointers.push_back(&images.back());
    indices.push_back(v.index);
  }
  const DinoBatch b = dino_augment_cpu(cfg.augment.dino, cfg.augment.mean, cfg.augment.std, seed, pointers, indices);
  return dino_groups(cfg, b.global, b.local, y);
}

}  // namespace synth
