#include "augment/dino_params.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"

namespace synth {
namespace {

// Python's round(): half to even. std::nearbyint uses the current rounding mode, which is
// round-to-nearest-even unless someone changed it; rounding explicitly keeps this independent.
double round_half_even(double x) {
  const double f = std::floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
}

void check(bool ok, const std::string& key, const std::string& message) {
  if (!ok) throw InputError("augment.dino." + key + ": " + message);
}

void check_probability(double p, const char* key) {
  check(p >= 0 && p <= 1, key, std::to_string(p) + " is not a probability (allowed: 0 .. 1)");
}

}  // namespace

const char* dino_crop_kind_name(DinoCropKind kind) {
  switch (kind) {
    case DinoCropKind::kGlobalFirst: return "global_first";
    case DinoCropKind::kGlobalSecond: return "global_second";
    default: return "local";
  }
}

void validate_dino_config(const DinoConfig& c) {
  check(c.global_crops >= 1 && c.global_crops <= 64, "global_crops", std::to_string(c.global_crops) + " is outside 1 .. 64");
  check(c.local_crops >= 0 && c.local_crops <= 64, "local_crops", std::to_string(c.local_crops) + " is outside 0 .. 64");
  check(c.global_size >= 1 && c.global_size <= 4096, "global_size", std::to_string(c.global_size) + " is outside 1 .. 4096");
  check(c.local_size >= 1 && c.local_size <= 4096, "local_size", std::to_string(c.local_size) + " is outside 1 .. 4096");
  const auto check_scale = [](double lo, double hi, const std::string& kind) {
    check(lo > 0 && lo <= 1, kind + "_scale_min", std::to_string(lo) + " is outside (0, 1]");
    check(hi > 0 && hi <= 1, kind + "_scale_max", std::to_string(hi) + " is outside (0, 1]");
    check(lo <= hi, kind + "_scale_min", std::to_string(lo) + " must be <= " + kind + "_scale_max (" + std::to_string(hi) + ")");
  };
  check_scale(c.global_scale_min, c.global_scale_max, "global");
  check_scale(c.local_scale_min, c.local_scale_max, "local");
  check(c.ratio_min > 0 && c.ratio_min <= 100, "ratio_min", std::to_string(c.ratio_min) + " is outside (0, 100]");
  check(c.ratio_max > 0 && c.ratio_max <= 100, "ratio_max", std::to_string(c.ratio_max) + " is outside (0, 100]");
  check(c.ratio_min <= c.ratio_max, "ratio_min", "must be <= ratio_max");
  check_probability(c.flip_p, "flip_p");
  check_probability(c.jitter_p, "jitter_p");
  check_probability(c.grayscale_p, "grayscale_p");
  check_probability(c.blur_p_first, "blur_p_first");
  check_probability(c.blur_p_second, "blur_p_second");
  check_probability(c.blur_p_local, "blur_p_local");
  check_probability(c.solarize_p, "solarize_p");
  check(c.brightness >= 0 && c.brightness <= 10, "brightness", std::to_string(c.brightness) + " is outside 0 .. 10");
  check(c.contrast >= 0 && c.contrast <= 10, "contrast", std::to_string(c.contrast) + " is outside 0 .. 10");
  check(c.saturation >= 0 && c.saturation <= 10, "saturation", std::to_string(c.saturation) + " is outside 0 .. 10");
  // torchvision's adjust_hue accepts shifts in [-0.5, 0.5] only.
  check(c.hue >= 0 && c.hue <= 0.5, "hue", std::to_string(c.hue) + " is outside 0 .. 0.5");
  check(c.blur_sigma_min > 0 && c.blur_sigma_min <= 100, "blur_sigma_min", std::to_string(c.blur_sigma_min) + " is outside (0, 100]");
  check(c.blur_sigma_max > 0 && c.blur_sigma_max <= 100, "blur_sigma_max", std::to_string(c.blur_sigma_max) + " is outside (0, 100]");
  check(c.blur_sigma_min <= c.blur_sigma_max, "blur_sigma_min", "must be <= blur_sigma_max");
}

DinoBox dino_random_resized_crop(CounterRng& rng, int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, bool* fallback) {
  if (height < 1 || width < 1)
    throw InputError("random resized crop of an empty image (" + std::to_string(height) + "x" + std::to_string(width) + ")");
  const double area = double(height) * width;
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * (scale_min + (scale_max - scale_min) * rng.uniform_double());
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * rng.uniform_double());
    const double w = round_half_even(std::sqrt(target_area * aspect));
    const double h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      DinoBox box;
      box.height = int(h);
      box.width = int(w);
      box.top = int(rng.below(uint64_t(height - box.height + 1)));
      box.left = int(rng.below(uint64_t(width - box.width + 1)));
      if (fallback) *fallback = false;
      return box;
    }
  }
  // torchvision's centre-crop fallback, including its float ratio comparisons.
  DinoBox box;
  const double in_ratio = double(width) / double(height);
  if (in_ratio < ratio_min) {
    box.width = width;
    box.height = int(round_half_even(box.width / ratio_min));
  } else if (in_ratio > ratio_max) {
    box.height = height;
    box.width = int(round_half_even(box.height * ratio_max));
  } else {
    box.width = width;
    box.height = height;
  }
  box.top = (height - box.height) / 2;
  box.left = (width - box.width) / 2;
  if (fallback) *fallback = true;
  return box;
}

DinoCropKind dino_crop_kind(const DinoConfig& cfg, int crop) {
  if (crop >= cfg.global_crops) return DinoCropKind::kLocal;
  return crop % 2 == 0 ? DinoCropKind::kGlobalFirst : DinoCropKind::kGlobalSecond;
}

DinoCropParams draw_dino_crop(const DinoConfig& cfg, uint64_t seed, uint64_t index, int crop, int height, int width) {
  const int total = cfg.global_crops + cfg.local_crops;
  if (crop < 0 || crop >= total)
    throw Error("DINO crop number " + std::to_string(crop) + " is outside 0 .. " + std::to_string(total - 1));
  CounterRng rng(seed, index, RngPurpose::kDinoAugment, uint32_t(crop));
  DinoCropParams p;
  p.crop = crop;
  p.kind = dino_crop_kind(cfg, crop);
  const bool local = p.kind == DinoCropKind::kLocal;
  p.out_size = local ? cfg.local_size : cfg.global_size;

  p.box = dino_random_resized_crop(rng, height, width, local ? cfg.local_scale_min : cfg.global_scale_min,
                                  local ? cfg.local_scale_max : cfg.global_scale_max, cfg.ratio_min, cfg.ratio_max,
                                  &p.box_fallback);
  p.flip = rng.uniform_double() < cfg.flip_p;

  p.jitter = rng.uniform_double() < cfg.jitter_p;
  std::array<uint8_t, 4> perm{{0, 1, 2, 3}};
  for (int i = 3; i > 0; --i) std::swap(perm[i], perm[rng.below(uint64_t(i) + 1)]);
  const auto factor = [&](double strength) { return rng.uniform(float(std::max(0.0, 1.0 - strength)), float(1.0 + strength)); };
  p.brightness = factor(cfg.brightness);
  p.contrast = factor(cfg.contrast);
  p.saturation = factor(cfg.saturation);
  p.hue = rng.uniform(float(-cfg.hue), float(cfg.hue));
  const double strength[4] = {cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue};
  p.jitter_ops = 0;
  for (const uint8_t op : perm)
    if (strength[op] > 0) p.jitter_order[size_t(p.jitter_ops++)] = op;
  for (int i = p.jitter_ops; i < 4; ++i) p.jitter_order[size_t(i)] = 255;

  p.grayscale = rng.uniform_double() < cfg.grayscale_p;

  const double blur_p = p.kind == DinoCropKind::kGlobalFirst    ? cfg.blur_p_first
                        : p.kind == DinoCropKind::kGlobalSecond ? cfg.blur_p_second
                                                                : cfg.blur_p_local;
  p.blur = rng.uniform_double() < blur_p;
  p.sigma = rng.uniform(float(cfg.blur_sigma_min), float(cfg.blur_sigma_max));

  const bool solarize = rng.uniform_double() < cfg.solarize_p;
  p.solarize = solarize && p.kind == DinoCropKind::kGlobalSecond;
  return p;
}

std::vector<DinoCropParams> draw_dino_params(const DinoConfig& cfg, uint64_t seed, uint64_t index, int height,
                                             int width) {
  std::vector<DinoCropParams> out;
  out.reserve(size_t(cfg.global_crops + cfg.local_crops));
  for (int c = 0; c < cfg.global_crops + cfg.local_crops; ++c)
    out.push_back(draw_dino_crop(cfg, seed, index, c, height, width));
  return out;
}

namespace {

const char* jitter_op_name(uint8_t op) {
  switch (op) {
    case kJitterBrightness: return "brightness";
    case kJitterContrast: return "contrast";
    case kJitterSaturation: return "saturation";
    default: return "hue";
  }
}

}  // namespace

nlohmann::json dino_params_json(const DinoCropParams& p) {
  nlohmann::json order = nlohmann::json::array();
  for (int k = 0; k < p.jitter_ops; ++k) order.push_back(jitter_op_name(p.jitter_order[size_t(k)]));
  return {{"crop", p.crop},
          {"kind", dino_crop_kind_name(p.kind)},
          {"size", p.out_size},
          {"box", {{"top", p.box.top}, {"left", p.box.left}, {"height", p.box.height}, {"width", p.box.width}}},
          {"box_fallback", p.box_fallback},
          {"flip", p.flip},
          {"jitter", p.jitter},
          {"jitter_order", order},
          {"brightness", p.brightness},
          {"contrast", p.contrast},
          {"saturation", p.saturation},
          {"hue", p.hue},
          {"grayscale", p.grayscale},
          {"blur", p.blur},
          {"sigma", p.sigma},
          {"solarize", p.solarize}};
}

}  // namespace synth
