// The trainer-side augmentation selected by augment.kind, as the trainer and stream-bench see it:
// a batch of ring images in, crops grouped by size out, each group with its labels.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "augment/simple_augment.hpp"
#include "config/config.hpp"
#include "io/image.hpp"

namespace synth {

// One crop size of a batch: N_crops x 3 x S x S normalized images and their N_crops labels.
struct CropGroup {
  torch::Tensor images, labels;
};

// "simple": one group, one crop per image. "dino": DINO's G global and L local crops per image
// (Caron et al. 2021, multi-crop) as two groups, image-major (image b's crop g is row b * G + g).
// On a CUDA device (CUDA flavor) DINO crops come from the fused kernels (dino_gpu.hpp) as
// channels-last `gpu_dtype` (gpu_crop_dtype) on that device, with the same crop parameters as the
// CPU reference; the views are copied out before this returns, so their ring slots may be
// released at once. CPU crops are float32 whatever gpu_dtype. Labels and "simple" crops stay on
// the CPU.
std::vector<CropGroup> augment_batch(const Config& cfg, uint64_t seed, const std::vector<ImageView>& views,
                                     const std::vector<int64_t>& labels, const torch::Device& device = torch::kCPU,
                                     torch::Dtype gpu_dtype = torch::kFloat32);

// The dtype the DINO kernels write for a train.precision: fp16 for fp16 and bf16 training, fp32
// for fp32 (see train_augment.cpp for bf16). InputError naming train.precision otherwise.
torch::Dtype gpu_crop_dtype(const std::string& precision);

// An owning copy of a view (a ring slot is reused once released).
ImageU8 copy_image(const ImageView& view);

}  // namespace synth
