#include "augment/dino_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "augment/resample.hpp"
#include "core/error.hpp"

namespace synth {
namespace {

float gray_of(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

float clamp01(float x) { return std::min(std::max(x, 0.0f), 1.0f); }

// torchvision _blend: (ratio * a + (1 - ratio) * b).clamp(0, 1), the (1 - ratio) in double as Python does.
float blend(float a, float b, float ratio) { return clamp01(ratio * a + float(1.0 - double(ratio)) * b); }

// Index of tap position x in [0, n) under torch's "reflect" padding, extended periodically.
int reflect(int x, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  x %= period;
  if (x < 0) x += period;
  return x < n ? x : period - x;
}

}  // namespace

PlanarImage dino_resized_crop(const ImageU8& src, const DinoBox& box, int out_height, int out_width) {
  if (src.channels != 3 || src.pixels.size() != src.bytes())
    throw Error("dino_resized_crop: expected an RGB image with " + std::to_string(src.bytes()) + " bytes, got " +
                std::to_string(src.channels) + " channels and " + std::to_string(src.pixels.size()) + " bytes");
  if (box.height < 1 || box.width < 1 || box.top < 0 || box.left < 0 || box.top + box.height > src.height ||
      box.left + box.width > src.width)
    throw Error("dino_resized_crop: box (" + std::to_string(box.top) + ", " + std::to_string(box.left) + ", " +
                std::to_string(box.height) + ", " + std::to_string(box.width) + ") is outside the " +
                std::to_string(src.height) + "x" + std::to_string(src.width) + " image");
  // ATen's antialiased bicubic (torchvision RandomResizedCrop(BICUBIC) on tensors).
  const ResampleTaps tx = resample_taps(box.width, out_width, ResampleFilter::kCubic),
                     ty = resample_taps(box.height, out_height, ResampleFilter::kCubic);
  // Width first: box.height rows x out_width columns.
  PlanarImage rows(box.height, out_width);
  for (int y = 0; y < box.height; ++y) {
    const uint8_t* line = &src.pixels[(size_t(box.top + y) * src.width + box.left) * 3];
    for (int x = 0; x < out_width; ++x) {
      const float* w = &tx.w[size_t(x) * tx.taps];
      const int x0 = tx.start[size_t(x)];
      for (int c = 0; c < 3; ++c) {
        float acc = 0.0f;
        for (int j = 0; j < tx.count[size_t(x)]; ++j) acc += w[j] * (float(line[size_t(x0 + j) * 3 + c]) / 255.0f);
        rows.at(c, y, x) = acc;
      }
    }
  }
  // Then height; clamped to [0, 1] as torchvision clamps bicubic resizes of uint8 images.
  PlanarImage out(out_height, out_width);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < out_height; ++y) {
      const float* w = &ty.w[size_t(y) * ty.taps];
      const int y0 = ty.start[size_t(y)];
      for (int x = 0; x < out_width; ++x) {
        float acc = 0.0f;
        for (int j = 0; j < ty.count[size_t(y)]; ++j) acc += w[j] * rows.at(c, y0 + j, x);
        out.at(c, y, x) = clamp01(acc);
      }
    }
  return out;
}

void dino_hflip(PlanarImage& img) {
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width / 2; ++x) std::swap(img.at(c, y, x), img.at(c, y, img.width - 1 - x));
}

void dino_adjust_brightness(PlanarImage& img, float factor) {
  // _blend with a black image: the second term is exactly 0.
  for (float& v : img.data) v = clamp01(factor * v);
}

void dino_adjust_contrast(PlanarImage& img, float factor) {
  const size_t n = size_t(img.height) * img.width;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += gray_of(img.data[i], img.data[n + i], img.data[2 * n + i]);
  const float mean = float(sum / double(n));
  for (float& v : img.data) v = blend(v, mean, factor);
}

void dino_adjust_saturation(PlanarImage& img, float factor) {
  const size_t n = size_t(img.height) * img.width;
  for (size_t i = 0; i < n; ++i) {
    const float g = gray_of(img.data[i], img.data[n + i], img.data[2 * n + i]);
    for (int c = 0; c < 3; ++c) img.data[c * n + i] = blend(img.data[c * n + i], g, factor);
  }
}

void dino_adjust_hue(PlanarImage& img, float shift) {
  const size_t n = size_t(img.height) * img.width;
  for (size_t i = 0; i < n; ++i) {
    const float r = img.data[i], g = img.data[n + i], b = img.data[2 * n + i];
    // torchvision _rgb2hsv.
    const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
    const bool eqc = maxc == minc;
    const float cr = maxc - minc;
    const float s = cr / (eqc ? 1.0f : maxc);
    const float crd = eqc ? 1.0f : cr;
    const float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
    float h;
    if (maxc == r) h = bc - gc;
    else if (maxc == g) h = 2.0f + rc - bc;
    else h = 4.0f + gc - rc;
    h = std::fmod(h / 6.0f + 1.0f, 1.0f);
    // (h + shift) % 1.0 with Python's sign convention.
    h += shift;
    h -= std::floor(h);
    // torchvision _hsv2rgb.
    const float v = maxc;
    const float i6 = std::floor(h * 6.0f);
    const float f = h * 6.0f - i6;
    const int sector = ((int(i6) % 6) + 6) % 6;
    const float p = clamp01(v * (1.0f - s)), q = clamp01(v * (1.0f - s * f)), t = clamp01(v * (1.0f - s * (1.0f - f)));
    const float rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    for (int c = 0; c < 3; ++c) img.data[c * n + i] = rgb[sector][c];
  }
}

void dino_grayscale(PlanarImage& img) {
  const size_t n = size_t(img.height) * img.width;
  for (size_t i = 0; i < n; ++i) {
    const float g = gray_of(img.data[i], img.data[n + i], img.data[2 * n + i]);
    img.data[i] = img.data[n + i] = img.data[2 * n + i] = g;
  }
}

int dino_blur_kernel_size(float sigma) { return 2 * int(std::ceil(3.0f * sigma)) + 1; }

std::vector<float> dino_gaussian_kernel1d(int size, float sigma) {
  std::vector<float> k(static_cast<size_t>(size), 0.0f);
  const float half = float(size - 1) * 0.5f;
  float sum = 0.0f;
  for (int i = 0; i < size; ++i) {
    const float t = (-half + float(i)) / sigma;
    k[size_t(i)] = std::exp(-0.5f * t * t);
    sum += k[size_t(i)];
  }
  for (float& v : k) v /= sum;
  return k;
}

void dino_gaussian_blur(PlanarImage& img, float sigma) {
  const int size = dino_blur_kernel_size(sigma), half = size / 2;
  const std::vector<float> k = dino_gaussian_kernel1d(size, sigma);
  PlanarImage tmp(img.height, img.width);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) {
        float acc = 0.0f;
        for (int j = 0; j < size; ++j) acc += k[size_t(j)] * img.at(c, y, reflect(x + j - half, img.width));
        tmp.at(c, y, x) = acc;
      }
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) {
        float acc = 0.0f;
        for (int j = 0; j < size; ++j) acc += k[size_t(j)] * tmp.at(c, reflect(y + j - half, img.height), x);
        img.at(c, y, x) = acc;
      }
}

void dino_solarize(PlanarImage& img) {
  constexpr float threshold = 128.0f / 255.0f;
  for (float& v : img.data)
    if (v >= threshold) v = 1.0f - v;
}

void dino_normalize(PlanarImage& img, const float mean[3], const float std[3]) {
  const size_t n = size_t(img.height) * img.width;
  for (int c = 0; c < 3; ++c)
    for (size_t i = 0; i < n; ++i) img.data[c * n + i] = (img.data[c * n + i] - mean[c]) / std[c];
}

void dino_crop_cpu(const ImageU8& src, const DinoCropParams& p, const float mean[3], const float std[3], float* out) {
  PlanarImage img = dino_resized_crop(src, p.box, p.out_size, p.out_size);
  if (p.flip) dino_hflip(img);
  if (p.jitter)
    for (int i = 0; i < p.jitter_ops; ++i) switch (p.jitter_order[size_t(i)]) {
        case kJitterBrightness: dino_adjust_brightness(img, p.brightness); break;
        case kJitterContrast: dino_adjust_contrast(img, p.contrast); break;
        case kJitterSaturation: dino_adjust_saturation(img, p.saturation); break;
        case kJitterHue: dino_adjust_hue(img, p.hue); break;
        default: throw Error("dino_crop_cpu: bad jitter op " + std::to_string(p.jitter_order[size_t(i)]));
      }
  if (p.grayscale) dino_grayscale(img);
  if (p.blur) dino_gaussian_blur(img, p.sigma);
  if (p.solarize) dino_solarize(img);
  dino_normalize(img, mean, std);
  std::copy(img.data.begin(), img.data.end(), out);
}

namespace {

void mean_std(const std::vector<double>& mean, const std::vector<double>& std, float m[3], float s[3]) {
  if (mean.size() != 3 || std.size() != 3)
    throw InputError("DINO normalization needs 3 means and 3 stds (augment.mean, augment.std), got " +
                     std::to_string(mean.size()) + " and " + std::to_string(std.size()));
  for (int c = 0; c < 3; ++c) {
    m[c] = float(mean[size_t(c)]);
    s[c] = float(std[size_t(c)]);
  }
}

}  // namespace

DinoBatch dino_augment_cpu_with(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                                const std::vector<const ImageU8*>& images,
                                const std::vector<std::vector<DinoCropParams>>& params) {
  validate_dino_config(cfg);
  if (images.size() != params.size())
    throw Error("dino_augment_cpu: " + std::to_string(images.size()) + " images but " + std::to_string(params.size()) +
                " parameter lists");
  float m[3], s[3];
  mean_std(mean, std, m, s);
  const int64_t B = int64_t(images.size()), G = cfg.global_crops, L = cfg.local_crops;
  const int64_t gs = cfg.global_size, ls = cfg.local_size;
  DinoBatch out;
  out.global = torch::empty({B * G, 3, gs, gs}, torch::kFloat32);
  out.local = L > 0 ? torch::empty({B * L, 3, ls, ls}, torch::kFloat32) : torch::empty({0, 3, ls, ls}, torch::kFloat32);
  float* gp = out.global.data_ptr<float>();
  float* lp = out.local.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& crops = params[size_t(b)];
    if (int64_t(crops.size()) != G + L)
      throw Error("dino_augment_cpu: image " + std::to_string(b) + " has " + std::to_string(crops.size()) +
                  " crop parameters, expected " + std::to_string(G + L));
    for (const DinoCropParams& p : crops) {
      const bool local = p.crop >= G;
      if (p.out_size != (local ? ls : gs))
        throw Error("dino_augment_cpu: crop " + std::to_string(p.crop) + " has size " + std::to_string(p.out_size) +
                    " but the config says " + std::to_string(local ? ls : gs));
      float* dst = local ? lp + (b * L + (p.crop - G)) * 3 * ls * ls : gp + (b * G + p.crop) * 3 * gs * gs;
      dino_crop_cpu(*images[size_t(b)], p, m, s, dst);
    }
  }
  out.params = params;
  return out;
}

DinoBatch dino_augment_cpu(const DinoConfig& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                           uint64_t seed, const std::vector<const ImageU8*>& images, const std::vector<uint64_t>& indices) {
  validate_dino_config(cfg);
  if (images.size() != indices.size())
    throw Error("dino_augment_cpu: " + std::to_string(images.size()) + " images but " + std::to_string(indices.size()) +
                " indices");
  std::vector<std::vector<DinoCropParams>> params;
  params.reserve(images.size());
  for (size_t b = 0; b < images.size(); ++b)
    params.push_back(draw_dino_params(cfg, seed, indices[b], images[b]->height, images[b]->width));
  return dino_augment_cpu_with(cfg, mean, std, images, params);
}

}  // namespace synth
