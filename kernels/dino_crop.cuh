// DINO multi-crop on the GPU: one launch per crop size per batch, from uint8 HWC RGB source images
// of any size straight to normalized fp16/fp32 crops in channels-last layout (N x S x S x 3). The
// semantics are the contract of src/augment/dino_cpu.hpp (torchvision functional-tensor ops in
// DINO's order); the parameters are drawn on the host by src/augment/dino_params.hpp. Plain CUDA
// C++: raw pointers and cudaStream_t, no torch headers (src/augment/dino_gpu.cpp adapts tensors).
//
// One thread block per crop, in up to three phases separated by __syncthreads:
//   1. every output pixel: antialiased bicubic resample of the box (direct 2-D sum over the
//      separable taps, weights precomputed per crop), flip, clamp, the jitter operations before
//      contrast; a block reduction gives contrast's grayscale mean. Without contrast and blur the
//      pixel is finished here and written out.
//   2. contrast and the remaining jitter operations, grayscale (then solarize + normalize + store
//      when there is no blur).
//   3. separable Gaussian blur with reflect padding (rows, then columns), solarize, normalize, store.
// Intermediates are crop-sized fp32 buffers in the caller's workspace; no full-size image is ever
// materialized.
//
// Cost per crop of side S from a box of bw x bh source pixels (scale sx = bw / S, sy = bh / S,
// taps per axis tx = 2 ceil(2 max(sx, 1)) + 1 at most, about 4 max(s, 1) on average):
//   FLOPs  ~ 6 S^2 tx ty                       (resample: 3 channels x multiply-add per tap pair)
//          + ~60 S^2                           (jitter incl. hsv round trip, grayscale, normalize)
//          + 12 S^2 (2 ceil(3 sigma) + 1)      (blur, when drawn)
//          e.g. 224 from 350x270: ~12 MFLOP; 96 from 170x170: ~3.5 MFLOP.
//   bytes  ~ 3 bw bh (source, mostly L2 hits)  + 3 S^2 x {2 | 4} (output)
//          + 24 S^2 (workspace write + read)   + 24 S^2 more when blurred.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace synth::kernels {

// One crop, everything the kernel needs (host struct, copied to the device by dino_crop_launch).
struct DinoCropDesc {
  const uint8_t* src = nullptr;  // device pointer to the source image, HWC RGB uint8, rows packed
  int src_height = 0, src_width = 0;
  int box_top = 0, box_left = 0, box_height = 0, box_width = 0;
  int flip = 0;
  int jitter_ops = 0;            // number of valid entries in jitter_order (0 = no jitter)
  int jitter_order[4] = {0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue
  float brightness = 1, contrast = 1, saturation = 1, hue = 0;
  int grayscale = 0;
  float sigma = 0;               // <= 0: no blur
  int solarize = 0;
};

enum class DinoOutType { kFloat32 = 0, kFloat16 = 1 };

// Largest Gaussian kernel the blur phase holds (sigma <= 100, the config's limit: 2*300+1 taps).
constexpr int kDinoMaxBlurTaps = 608;

// Workspace bytes dino_crop_launch needs for num_crops crops of side `size` whose largest resample
// tap count is max_taps (dino_max_taps over the crops' boxes).
size_t dino_crop_workspace_bytes(int num_crops, int size, int max_taps);

// Taps per axis of the antialiased bicubic resample from `in` pixels to `out` pixels.
int dino_resample_taps(int in, int out);

// Crops descs[0 .. num_crops) (host array) to `out` (device, num_crops x size x size x 3, fp32 or
// fp16 by out_type) on `stream`. mean/std: per-channel normalization. `workspace` (device) holds
// dino_crop_workspace_bytes(...) bytes. Returns the first CUDA error (the descriptor upload, the
// launch) or cudaErrorInvalidValue for bad arguments (size < 1, a box outside its image, sigma
// too large, max_taps too small for a box).
cudaError_t dino_crop_launch(const DinoCropDesc* descs, int num_crops, int size, const float mean[3],
                             const float std[3], void* out, DinoOutType out_type, void* workspace,
                             size_t workspace_bytes, int max_taps, cudaStream_t stream);

}  // namespace synth::kernels
