// DINO multi-crop, CPU reference: plain float32 loops, one crop at a time. It is the CPU build's
// augmentation path and the oracle of the CUDA kernels' parity test (kernels/dino_crop.cuh).
//
// CONTRACT (one crop, parameters from dino_params.hpp; torchvision functional-tensor semantics on
// float images in [0, 1], applied in DINO's order, main_dino.py DataAugmentationDINO):
//  0. Source: uint8 HWC RGB, converted to float32 x / 255 (ToTensor) before anything else. No
//     intermediate rounding to uint8 anywhere; every value is float32.
//  1. Resized crop (F.resized_crop, BICUBIC, antialias=True): the box rows/columns of the source are
//     resampled to out_size x out_size by torch's antialiased bicubic interpolate (Pillow's filter,
//     ATen UpSampleKernel.cpp _compute_indices_weights_aa): per axis scale = in / out (float),
//     centre = scale * (i + 0.5), support = 2 * max(scale, 1), taps from
//     xmin = max(int(centre - support + 0.5), 0) to min(int(centre + support + 0.5), in) (exclusive),
//     weight of tap x = k((x - centre + 0.5) / max(scale, 1)) with the cubic kernel a = -0.5,
//     weights normalized to sum 1. Width is resampled first, then height (as ATen does). The result
//     is clamped to [0, 1], as torchvision's F.resize clamps bicubic output for uint8 images (we
//     keep float precision instead of rounding to uint8). Without the clamp, overshoot would reach
//     the hue conversion, where a pixel with max 0 and min < 0 gives saturation inf and NaN.
//  2. hflip: out[y][x] = in[y][S - 1 - x].
//  3. Colour jitter (if drawn): the ops in jitter_order, each as torchvision's adjust_*:
//       brightness f: clamp(f * x, 0, 1)
//       contrast f:   m = mean over the whole crop of gray(x); clamp(f * x + (1 - f) * m, 0, 1)
//       saturation f: clamp(f * x + (1 - f) * gray(x), 0, 1) per pixel
//       hue h:        rgb -> hsv (torchvision _rgb2hsv), h' = (h + shift) mod 1, hsv -> rgb
//                     (_hsv2rgb: p, q, t clamped to [0, 1], v not clamped)
//     gray(x) = 0.299 R + 0.587 G + 0.114 B. (torchvision's rgb_to_grayscale uses 0.2989; we use
//     the ITU-R 601 / PIL weights 0.299 as the issue specifies: they sum to 1, so gray stays gray.)
//  4. Grayscale (if drawn): every channel = gray(x).
//  5. Gaussian blur (if drawn), F.gaussian_blur semantics with the kernel size DINO's PIL blur
//     implies: DINO calls PIL ImageFilter.GaussianBlur(radius = sigma), whose box-blur approximation
//     has standard deviation sigma and reaches about 3 sigma, so we use a true Gaussian of that
//     sigma truncated at k = 2 * ceil(3 sigma) + 1 taps: weights exp(-0.5 (t / sigma)^2) for
//     t = -(k-1)/2 .. (k-1)/2, normalized (torchvision _get_gaussian_kernel1d). Padding "reflect"
//     (mirror without repeating the edge, as torch's reflection pad); when the kernel is wider
//     than the crop the reflection repeats with period 2 (n - 1). Applied separably (rows, then
//     columns), equal to torchvision's 2-D convolution up to float rounding.
//  6. Solarize (if drawn): x >= 128/255 -> 1 - x (F.solarize on floats, PIL's threshold 128).
//  7. Normalize: (x - mean[c]) / std[c] (float32 mean/std).
// Output: float32 CHW, 3 x S x S.
#pragma once
#include <cstdint>
#include <torch/types.h>
#include <vector>

#include "augment/dino_params.hpp"
#include "io/image.hpp"

namespace synth {

// A float image, planar RGB: data[(c * height + y) * width + x].
struct PlanarImage {
  int height = 0, width = 0;
  std::vector<float> data;
  PlanarImage() = default;
  PlanarImage(int h, int w) : height(h), width(w), data(size_t(3) * h * w, 0.0f) {}
  float& at(int c, int y, int x) { return data[(size_t(c) * height + y) * width + x]; }
  float at(int c, int y, int x) const { return data[(size_t(c) * height + y) * width + x]; }
};

// The building blocks, each exactly one step of the contract (exposed for tests).
PlanarImage dino_resized_crop(const ImageU8& src, const DinoBox& box, int out_height, int out_width);
void dino_hflip(PlanarImage& img);
void dino_adjust_brightness(PlanarImage& img, float factor);
void dino_adjust_contrast(PlanarImage& img, float factor);
void dino_adjust_saturation(PlanarImage& img, float factor);
void dino_adjust_hue(PlanarImage& img, float shift);
void dino_grayscale(PlanarImage& img);
int dino_blur_kernel_size(float sigma);
std::vector<float> dino_gaussian_kernel1d(int size, float sigma);
void dino_gaussian_blur(PlanarImage& img, float sigma);
void dino_solarize(PlanarImage& img);
void dino_normalize(PlanarImage& img, const float mean[3], const float std[3]);

// One crop by the whole contract, written as 3 x S x S floats to `out`.
void dino_crop_cpu(const ImageU8& src, const DinoCropParams& p, const float mean[3], const float std[3], float* out);

// The crops of a batch grouped by size, image-major: image b's global crop g is row b * G + g of
// `global` (B*G x 3 x S x S) and its local crop l is row b * L + l of `local` (B*L x 3 x s x s).
// `local` is an empty tensor when L = 0.
struct DinoBatch {
  torch::Tensor global, local;
  std::vector<std::vector<DinoCropParams>> params;  // per image, globals first
};

// Draws the parameters of every image (indices[b] is image b's global index) and runs the CPU
// reference. mean/std: augment.mean / augment.std (3 values each).
DinoBatch dino_augment_cpu(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                           uint64_t seed, const std::vector<const ImageU8*>& images, const std::vector<uint64_t>& indices);

// Same with given parameters (the GPU parity test and stream-augment use it).
DinoBatch dino_augment_cpu_with(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                                const std::vector<const ImageU8*>& images,
                                const std::vector<std::vector<DinoCropParams>>& params);

}  // namespace synth
