// DINO multi-crop on the GPU (CUDA flavor only: dino_gpu.cpp is built when SYNTH_CUDA is on, and
// the augment stage then defines SYNTH_WITH_CUDA). Adapts tensors to kernels/dino_crop.cuh: one
// launch for the global crops and one for the local crops of a batch, on the current CUDA stream.
// Parameters come from dino_params.hpp exactly as for the CPU reference (dino_cpu.hpp), whose
// contract the kernels implement.
#pragma once
#include <torch/types.h>

#include <vector>

#include "augment/dino_params.hpp"
#include "io/image.hpp"

namespace synth {

// global: B*G x 3 x S x S, local: B*L x 3 x s x s, image-major as DinoBatch; both on the GPU in
// channels-last memory format (the kernels write N x S x S x 3), dtype kFloat16 or kFloat32.
struct DinoGpuBatch {
  torch::Tensor global, local;
};

// sources[b]: image b as a contiguous uint8 H x W x 3 CUDA tensor (any size per image), all on one
// GPU; the kernels run there (made current for the call) on its current stream, and the crops
// are allocated there. Error when a source is elsewhere.
DinoGpuBatch dino_augment_gpu(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                              const std::vector<torch::Tensor>& sources,
                              const std::vector<std::vector<DinoCropParams>>& params, torch::Dtype out_dtype);

// Convenience for host images (stream-augment, tests, bench): uploads to `device` (cuda without
// an index: the current GPU), then as above.
DinoGpuBatch dino_augment_gpu(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                              const std::vector<const ImageU8*>& images,
                              const std::vector<std::vector<DinoCropParams>>& params, torch::Dtype out_dtype,
                              const torch::Device& device = torch::Device(torch::kCUDA));

}  // namespace synth
