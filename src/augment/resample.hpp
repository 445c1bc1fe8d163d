// The one CPU resampler of the augmentations: separable antialiased filter taps, as PIL and ATen
// build them (a filter whose support widens with the downscale factor, weights renormalized where
// it leaves the image). Output i of an axis reads inputs start[i] .. start[i] + count[i] - 1 with
// weights w[i * taps + j]. Two filters, each with its reference's own arithmetic so results are
// bit-for-bit those of the code they mirror:
//   kTriangle  PIL's antialiased bilinear (Resample.c, double precision): radius max(scale, 1),
//              weight 1 - |(x - centre + 0.5) / radius|. simple_augment and eval_preprocess
//              (torchvision Resize on PIL images).
//   kCubic     ATen's antialiased bicubic, a = -0.5 (UpSampleKernel.cpp _compute_indices_weights_aa,
//              float): support 2 max(scale, 1). DINO's RandomResizedCrop (dino_cpu); the CUDA kernel
//              keeps its own copy on purpose, as the independent side of its parity test.
// Cost: out_size * taps weights per axis; taps = 2 ceil(support) + 1.
#pragma once
#include <vector>

namespace synth {

enum class ResampleFilter { kTriangle, kCubic };

struct ResampleTaps {
  int taps = 0;                 // weights per output (the largest count)
  std::vector<int> start, count;
  std::vector<float> w;         // out_size * taps, zero beyond count[i]
};

ResampleTaps resample_taps(int in_size, int out_size, ResampleFilter filter);

}  // namespace synth
