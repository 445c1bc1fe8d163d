// The simple trainer-side augmentation of the Foundation issue and the evaluation preprocessing,
// both on the CPU, from the ring's uint8 HWC images to normalized float NCHW batches.
//
// Contract (torchvision's RandomResizedCrop + RandomHorizontalFlip + Normalize, and
// Resize + CenterCrop + Normalize for evaluation):
//  - crop box: torchvision RandomResizedCrop.get_params - up to 10 attempts of area fraction
//    U(scale_min, scale_max) and aspect ratio exp(U(log ratio_min, log ratio_max)), sides rounded,
//    accepted when the box fits, top/left uniform over the valid positions; else the centre crop
//    of the whole image clamped to the ratio range;
//  - resampling: separable triangle (bilinear) filter whose support widens by the downscale factor
//    (PIL's / torchvision's antialiased bilinear), pixel centres at +0.5, weights renormalized at
//    the borders; upscaling is plain bilinear;
//  - flip with probability flip_p, after the resize;
//  - x = (v / 255 - mean[c]) / std[c].
// Every draw comes from CounterRng(seed, image index, kAugment, crop 0): the crops of an image do
// not depend on the batch it lands in, the thread count or a resume.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "config/config.hpp"
#include "core/rng.hpp"

namespace synth {

// A read-only view of one uint8 HWC RGB image (a ring slot or a decoded file).
struct ImageView {
  const uint8_t* pixels = nullptr;
  int height = 0, width = 0, channels = 3;
  uint64_t index = 0;  // global stream index: the augmentation RNG key
};

struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
  bool operator==(const CropBox& o) const {
    return top == o.top && left == o.left && height == o.height && width == o.width;
  }
};

// torchvision RandomResizedCrop.get_params for an image of height x width.
CropBox random_resized_crop_box(CounterRng& rng, int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max);

// Resamples box of src (uint8 HWC, channels 1 or 3; gray is replicated) to out_h x out_w and writes
// normalized float CHW into out (3 * out_h * out_w floats), mirrored left-right when flip.
void resize_normalize(const ImageView& src, const CropBox& box, int out_h, int out_w, bool flip,
                      const std::vector<double>& mean, const std::vector<double>& std, float* out);

// The training batch: N x 3 x crop_size x crop_size float (one crop per image).
torch::Tensor simple_augment_batch(const AugmentConfig& cfg, uint64_t seed, const std::vector<ImageView>& images);

// Evaluation (torchvision's Resize(resize) + CenterCrop(crop) + Normalize on PIL images): resize
// the shorter side to `resize` (aspect kept), centre crop `crop` x `crop`,
// normalize. The filter is the antialiased bilinear (triangle) filter described above, i.e. PIL's
// BILINEAR resize that torchvision applies to PIL images (antialias on). It is computed in one pass
// from the source box that maps onto the crop window, so it can differ from resizing the whole
// image and then cropping by the rounding of that box (under a source pixel). Returns
// 3 x crop x crop.
torch::Tensor eval_preprocess(const ImageView& image, int resize, int crop, const std::vector<double>& mean,
                              const std::vector<double>& std);
// The same, written to out (3 * crop * crop floats, CHW) without any LibTorch call, for decoder
// threads outside LibTorch's thread pool.
void eval_preprocess_into(const ImageView& image, int resize, int crop, const std::vector<double>& mean,
                          const std::vector<double>& std, float* out);

}  // namespace synth
