#include "augment/simple_augment.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/Parallel.h>

#include "augment/dino_params.hpp"
#include "augment/resample.hpp"
#include "core/error.hpp"

namespace synth {
namespace {

void check_view(const ImageView& v) {
  if (v.pixels == nullptr || v.height < 1 || v.width < 1 || (v.channels != 1 && v.channels != 3))
    throw Error("augment: image " + std::to_string(v.index) + " has an invalid shape " + std::to_string(v.height) +
                "x" + std::to_string(v.width) + "x" + std::to_string(v.channels));
}

void check_norm(const std::vector<double>& mean, const std::vector<double>& std) {
  if (mean.size() != 3 || std.size() != 3) throw InputError("augment.mean and augment.std need 3 values each");
}

}  // namespace

CropBox random_resized_crop_box(CounterRng& rng, int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max) {
  // One implementation of torchvision's rule serves both augmentations (dino_params.cpp).
  const DinoBox b = dino_random_resized_crop(rng, height, width, scale_min, scale_max, ratio_min, ratio_max, nullptr);
  return CropBox{b.top, b.left, b.height, b.width};
}

void resize_normalize(const ImageView& src, const CropBox& box, int out_h, int out_w, bool flip,
                      const std::vector<double>& mean, const std::vector<double>& std, float* out) {
  check_view(src);
  check_norm(mean, std);
  if (box.top < 0 || box.left < 0 || box.height < 1 || box.width < 1 || box.top + box.height > src.height ||
      box.left + box.width > src.width)
    throw Error("augment: crop box outside image " + std::to_string(src.index));
  // PIL's antialiased bilinear (torchvision's Resize / RandomResizedCrop on PIL images).
  const ResampleTaps tx = resample_taps(box.width, out_w, ResampleFilter::kTriangle),
                     ty = resample_taps(box.height, out_h, ResampleFilter::kTriangle);
  const int C = src.channels;
  // Horizontal pass over the box's rows: box.height x out_w x 3 floats in [0, 255].
  std::vector<float> rows(size_t(box.height) * out_w * 3);
  for (int y = 0; y < box.height; ++y) {
    const uint8_t* line = src.pixels + (size_t(box.top + y) * src.width + box.left) * C;
    float* dst = rows.data() + size_t(y) * out_w * 3;
    for (int x = 0; x < out_w; ++x) {
      const float* weights = &tx.w[size_t(x) * size_t(tx.taps)];
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < tx.count[size_t(x)]; ++k) {
        const uint8_t* p = line + size_t(tx.start[size_t(x)] + k) * C;
        const float w = weights[k];
        for (int c = 0; c < 3; ++c) acc[c] += w * float(p[C == 1 ? 0 : c]);
      }
      const int ox = flip ? out_w - 1 - x : x;
      for (int c = 0; c < 3; ++c) dst[size_t(ox) * 3 + c] = acc[c];
    }
  }
  // Vertical pass, then x / 255 normalized, written planar (CHW).
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = float(1.0 / (255.0 * std[size_t(c)]));
    shift[c] = float(-mean[size_t(c)] / std[size_t(c)]);
  }
  const size_t plane = size_t(out_h) * out_w;
  for (int y = 0; y < out_h; ++y) {
    const float* weights = &ty.w[size_t(y) * size_t(ty.taps)];
    for (int x = 0; x < out_w; ++x) {
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < ty.count[size_t(y)]; ++k) {
        const float* p = rows.data() + (size_t(ty.start[size_t(y)] + k) * out_w + x) * 3;
        const float w = weights[k];
        for (int c = 0; c < 3; ++c) acc[c] += w * p[c];
      }
      for (int c = 0; c < 3; ++c) out[size_t(c) * plane + size_t(y) * out_w + x] = acc[c] * scale[c] + shift[c];
    }
  }
}

torch::Tensor simple_augment_batch(const AugmentConfig& cfg, uint64_t seed, const std::vector<ImageView>& images) {
  const int S = cfg.crop_size;
  torch::Tensor out = torch::empty({int64_t(images.size()), 3, S, S}, torch::kFloat32);
  float* base = out.data_ptr<float>();
  const size_t per_image = size_t(3) * S * S;
  // Images are independent and each is computed by one thread: the result is bitwise the same
  // for any thread count.
  at::parallel_for(0, int64_t(images.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const ImageView& v = images[size_t(i)];
      check_view(v);
      CounterRng rng(seed, v.index, RngPurpose::kAugment, 0);
      const CropBox box = random_resized_crop_box(rng, v.height, v.width, cfg.scale_min, cfg.scale_max,
                                                  cfg.ratio_min, cfg.ratio_max);
      const bool flip = rng.bernoulli(cfg.flip_p);
      resize_normalize(v, box, S, S, flip, cfg.mean, cfg.std, base + size_t(i) * per_image);
    }
  });
  return out;
}

torch::Tensor eval_preprocess(const ImageView& image, int resize, int crop, const std::vector<double>& mean,
                              const std::vector<double>& std) {
  torch::Tensor out = torch::empty({3, crop, crop}, torch::kFloat32);
  eval_preprocess_into(image, resize, crop, mean, std, out.data_ptr<float>());
  return out;
}

void eval_preprocess_into(const ImageView& image, int resize, int crop, const std::vector<double>& mean,
                          const std::vector<double>& std, float* out) {
  check_view(image);
  if (crop > resize) throw InputError("eval.crop must be <= eval.resize");
  // Resize the shorter side to `resize` then centre-crop `crop`: equivalently, resample the source
  // box that maps onto the crop window (one pass instead of two, same filter scale).
  const bool wide = image.width >= image.height;
  const double factor = double(resize) / (wide ? image.height : image.width);
  const int rh = wide ? resize : std::max(1, int(std::nearbyint(image.height * factor)));
  const int rw = wide ? std::max(1, int(std::nearbyint(image.width * factor))) : resize;
  const int ch = std::min(crop, rh), cw = std::min(crop, rw);
  CropBox box;
  box.height = std::max(1, std::min(image.height, int(std::nearbyint(ch / factor))));
  box.width = std::max(1, std::min(image.width, int(std::nearbyint(cw / factor))));
  box.top = (image.height - box.height) / 2;
  box.left = (image.width - box.width) / 2;
  resize_normalize(image, box, crop, crop, false, mean, std, out);
}

}  // namespace synth
