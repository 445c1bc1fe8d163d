#include "augment/train_augment.hpp"

#include "augment/dino_cpu.hpp"

namespace synth {

ImageU8 copy_image(const ImageView& v) {
  ImageU8 im;
  im.height = v.height;
  im.width = v.width;
  im.channels = v.channels;
  im.pixels.assign(v.pixels, v.pixels + im.bytes());
  return im;
}

std::vector<CropGroup> augment_batch(const Config& cfg, uint64_t seed, const std::vector<ImageView>& views,
                                     const std::vector<int64_t>& labels) {
  const torch::Tensor y = torch::tensor(labels, torch::kInt64);
  if (cfg.augment.kind == "simple") return {{simple_augment_batch(cfg.augment, seed, views), y}};
  // The DINO CPU reference takes whole images; copy the slots (the CUDA flavor's fused kernel
  // reads them in place).
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
  std::vector<CropGroup> groups;
  groups.push_back({b.global, y.repeat_interleave(cfg.augment.dino.global_crops)});
  if (cfg.augment.dino.local_crops > 0 && b.local.defined() && b.local.numel() > 0)
    groups.push_back({b.local, y.repeat_interleave(cfg.augment.dino.local_crops)});
  return groups;
}

}  // namespace synth
