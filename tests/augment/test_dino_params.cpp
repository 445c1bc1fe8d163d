// DINO crop parameters: determinism per (seed, index, crop), the RandomResizedCrop rule's area
// statistics against a numerical integration of the rule, every coin's rate over 10,000 images,
// and config validation (loader and validate_dino_config).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "augment/dino_params.hpp"
#include "config/load.hpp"
#include "core/error.hpp"

using namespace synth;

namespace {

bool same(const DinoCropParams& a, const DinoCropParams& b) {
  return a.crop == b.crop && a.kind == b.kind && a.out_size == b.out_size && a.box.top == b.box.top &&
         a.box.left == b.box.left && a.box.height == b.box.height && a.box.width == b.box.width &&
         a.box_fallback == b.box_fallback && a.flip == b.flip && a.jitter == b.jitter && a.jitter_ops == b.jitter_ops &&
         a.jitter_order == b.jitter_order && a.brightness == b.brightness && a.contrast == b.contrast &&
         a.saturation == b.saturation && a.hue == b.hue && a.grayscale == b.grayscale && a.blur == b.blur &&
         a.sigma == b.sigma && a.solarize == b.solarize;
}

// Python round (half to even), as the rule under test uses.
double pyround(double x) {
  const double f = std::floor(x), d = x - f;
  if (d != 0.5) return std::floor(x + 0.5);
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
}

// E[area fraction] of the torchvision rule by midpoint integration over (scale, log ratio):
// P(accept) and E[fraction | accept] of one attempt, then 10 attempts and the fallback.
double expected_area_fraction(int H, int W, double smin, double smax, double rmin, double rmax) {
  const int n = 1500;
  const double A = double(H) * W, llo = std::log(rmin), lhi = std::log(rmax);
  double accepted = 0, area_sum = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double s = smin + (smax - smin) * (i + 0.5) / n, r = std::exp(llo + (lhi - llo) * (j + 0.5) / n);
      const double w = pyround(std::sqrt(A * s * r)), h = pyround(std::sqrt(A * s / r));
      if (w > 0 && w <= W && h > 0 && h <= H) {
        accepted += 1;
        area_sum += w * h / A;
      }
    }
  const double p = accepted / (double(n) * n), miss10 = std::pow(1 - p, 10);
  const double in_ratio = double(W) / H;
  double fw = W, fh = H;
  if (in_ratio < rmin) fh = pyround(W / rmin);
  if (in_ratio > rmax) fw = pyround(H * rmax);
  return (1 - miss10) * (area_sum / accepted) + miss10 * fw * fh / A;
}

struct Rate {
  long hits = 0, n = 0;
  void add(bool b) { hits += b, ++n; }
  double value() const { return double(hits) / double(n); }
};

// |rate - p| within 4.5 binomial standard errors.
void check_rate(const Rate& r, double p, const char* what) {
  INFO(what << ": " << r.hits << "/" << r.n << " = " << r.value() << ", expected " << p);
  REQUIRE(r.n >= 10000);
  const double se = std::sqrt(p * (1 - p) / double(r.n));
  if (p == 0 || p == 1) CHECK(r.value() == p);
  else CHECK(std::fabs(r.value() - p) <= 4.5 * se);
}

std::string input_error(const std::string& toml) {
  try {
    parse_config(toml, "dino.toml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the same (seed, index, crop) always gives the same parameters; other keys differ") {
  DinoConfig cfg;
  cfg.global_crops = 2;
  for (int crop = 0; crop < 10; ++crop) {
    const DinoCropParams a = draw_dino_crop(cfg, 7, 123456789012ull, crop, 384, 512);
    const DinoCropParams b = draw_dino_crop(cfg, 7, 123456789012ull, crop, 384, 512);
    CHECK(same(a, b));
    CHECK(a.crop == crop);
    CHECK(a.out_size == (crop < 2 ? 224 : 96));
  }
  const auto all = draw_dino_params(cfg, 7, 5, 384, 512);
  REQUIRE(all.size() == 10);
  CHECK(all[0].kind == DinoCropKind::kGlobalFirst);
  CHECK(all[1].kind == DinoCropKind::kGlobalSecond);
  CHECK(all[2].kind == DinoCropKind::kLocal);
  CHECK(same(all[4], draw_dino_crop(cfg, 7, 5, 4, 384, 512)));
  // Neighbouring seeds, indices and crop numbers give different boxes (a sigma collision is ~0).
  const DinoCropParams base = draw_dino_crop(cfg, 7, 5, 3, 384, 512);
  CHECK(base.sigma != draw_dino_crop(cfg, 8, 5, 3, 384, 512).sigma);
  CHECK(base.sigma != draw_dino_crop(cfg, 7, 6, 3, 384, 512).sigma);
  CHECK(base.sigma != draw_dino_crop(cfg, 7, 5, 4, 384, 512).sigma);
  CHECK_THROWS_AS(draw_dino_crop(cfg, 7, 5, 10, 384, 512), Error);
}

TEST_CASE("random resized crop: boxes inside the image, area fractions in the scale range, mean as the rule implies") {
  struct Case {
    int H, W;
    double smin, smax;
  };
  for (const Case c : {Case{384, 512, 0.25, 1.0}, Case{384, 512, 0.05, 0.25}, Case{100, 37, 0.4, 1.0}}) {
    CAPTURE(c.H);
    CAPTURE(c.smin);
    const double A = double(c.H) * c.W;
    double sum = 0, sum2 = 0;
    long fallbacks = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
      CounterRng rng(3, uint64_t(i), RngPurpose::kDinoAugment, 0);
      bool fb = true;
      const DinoBox b = dino_random_resized_crop(rng, c.H, c.W, c.smin, c.smax, 0.75, 4.0 / 3.0, &fb);
      REQUIRE(b.top >= 0);
      REQUIRE(b.left >= 0);
      REQUIRE(b.height >= 1);
      REQUIRE(b.width >= 1);
      REQUIRE(b.top + b.height <= c.H);
      REQUIRE(b.left + b.width <= c.W);
      if (!fb) {
        // w = round(sqrt(A s r)), h = round(sqrt(A s / r)) bound A s between the rounded sides +- 0.5.
        CHECK((b.width + 0.5) * (b.height + 0.5) >= c.smin * A);
        CHECK((b.width - 0.5) * (b.height - 0.5) <= c.smax * A);
      } else {
        ++fallbacks;
      }
      const double f = b.width * double(b.height) / A;
      sum += f;
      sum2 += f * f;
    }
    const double mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
    const double expected = expected_area_fraction(c.H, c.W, c.smin, c.smax, 0.75, 4.0 / 3.0);
    INFO("mean area fraction " << mean << ", expected " << expected << ", fallbacks " << fallbacks);
    CHECK(std::fabs(mean - expected) <= 4.5 * sd / std::sqrt(double(n)) + 1e-3);
  }
  // An image far outside the ratio range makes every attempt fail at scale 1: torchvision's
  // fallback crops the widest box of ratio ratio_min, centred.
  CounterRng rng(1, 1, RngPurpose::kDinoAugment, 0);
  bool fb = false;
  const DinoBox b = dino_random_resized_crop(rng, 400, 10, 1.0, 1.0, 0.75, 4.0 / 3.0, &fb);
  CHECK(fb);
  CHECK(b.width == 10);
  CHECK(b.height == 13);  // round(10 / 0.75) = round(13.33)
  CHECK(b.top == (400 - 13) / 2);
  CHECK(b.left == 0);
  const DinoBox c = dino_random_resized_crop(rng, 10, 400, 1.0, 1.0, 0.75, 4.0 / 3.0, &fb);
  CHECK(fb);
  CHECK(c.height == 10);
  CHECK(c.width == 13);
  CHECK(c.left == (400 - 13) / 2);
}

TEST_CASE("coin rates over 10,000 images: flip, jitter, grayscale, blur per crop kind, solarize on the second global only") {
  DinoConfig cfg;
  cfg.global_crops = 2;
  Rate flip, jitter, gray, blur_first, blur_second, blur_local, sol_first, sol_second, sol_local, hue_first;
  double sigma_sum = 0;
  long sigma_n = 0;
  for (int i = 0; i < 10000; ++i) {
    for (const DinoCropParams& p : draw_dino_params(cfg, 11, uint64_t(i), 384, 512)) {
      flip.add(p.flip);
      jitter.add(p.jitter);
      gray.add(p.grayscale);
      REQUIRE(p.sigma >= 0.1f);
      REQUIRE(p.sigma < 2.0f);
      sigma_sum += p.sigma;
      ++sigma_n;
      REQUIRE(p.brightness >= 0.6f);
      REQUIRE(p.brightness <= 1.4f);
      REQUIRE(p.contrast >= 0.6f);
      REQUIRE(p.contrast <= 1.4f);
      REQUIRE(p.saturation >= 0.8f);
      REQUIRE(p.saturation <= 1.2f);
      REQUIRE(std::fabs(p.hue) <= 0.1f);
      REQUIRE(p.jitter_ops == 4);
      int seen = 0;
      for (int k = 0; k < 4; ++k) seen |= 1 << p.jitter_order[size_t(k)];
      REQUIRE(seen == 15);
      hue_first.add(p.jitter_order[0] == kJitterHue);
      switch (p.kind) {
        case DinoCropKind::kGlobalFirst: blur_first.add(p.blur), sol_first.add(p.solarize); break;
        case DinoCropKind::kGlobalSecond: blur_second.add(p.blur), sol_second.add(p.solarize); break;
        default: blur_local.add(p.blur), sol_local.add(p.solarize);
      }
    }
  }
  check_rate(flip, 0.5, "flip");
  check_rate(jitter, 0.8, "jitter");
  check_rate(gray, 0.2, "grayscale");
  check_rate(blur_first, 1.0, "blur, first global");
  check_rate(blur_second, 0.1, "blur, second global");
  check_rate(blur_local, 0.5, "blur, local");
  check_rate(sol_first, 0.0, "solarize, first global");
  check_rate(sol_second, 0.2, "solarize, second global");
  check_rate(sol_local, 0.0, "solarize, local");
  check_rate(hue_first, 0.25, "hue first in the jitter order");
  CHECK(sigma_sum / double(sigma_n) == doctest::Approx(1.05).epsilon(0.01));

  // Zero-strength operations leave the order, as torchvision's ColorJitter sets them to None.
  cfg.hue = 0;
  cfg.saturation = 0;
  const DinoCropParams p = draw_dino_crop(cfg, 1, 2, 0, 384, 512);
  CHECK(p.jitter_ops == 2);
  for (int k = 0; k < 2; ++k) CHECK(p.jitter_order[size_t(k)] < 2);
}

TEST_CASE("bad DINO config values are InputErrors naming the key") {
  CHECK(input_error("[augment.dino]\nglobal_scale_min = 0.9\nglobal_scale_max = 0.5\n").find(
            "augment.dino.global_scale_min (0.9) must be <= augment.dino.global_scale_max (0.5)") != std::string::npos);
  CHECK(input_error("[augment.dino]\nlocal_scale_min = 0.0\n").find("augment.dino.local_scale_min = 0 is out of range") !=
        std::string::npos);
  CHECK(input_error("[augment.dino]\njitter_p = 1.5\n").find("augment.dino.jitter_p = 1.5 is out of range") !=
        std::string::npos);
  CHECK(input_error("[augment.dino]\nglobal_size = 0\n").find("augment.dino.global_size = 0 is out of range") !=
        std::string::npos);
  CHECK(input_error("[augment.dino]\nhue = 0.6\n").find("augment.dino.hue = 0.6 is out of range") != std::string::npos);
  CHECK(input_error("[augment.dino]\nblur_sigma_min = 3.0\n").find("augment.dino.blur_sigma_min (3) must be <=") !=
        std::string::npos);
  CHECK(input_error("[augment.dino]\nratio_min = 2.0\n").find("augment.dino.ratio_min (2) must be <=") != std::string::npos);
  CHECK(input_error("[augment.dino]\nlocal_crops = -1\n").find("augment.dino.local_crops = -1 is out of range") !=
        std::string::npos);
  CHECK(input_error("[augment.dino]\nglobal_crop = 2\n").find("did you mean augment.dino.global_crops?") != std::string::npos);
  // A valid section loads.
  const Config ok = parse_config("[augment.dino]\nglobal_crops = 2\nlocal_size = 64\n", "dino.toml");
  CHECK(ok.augment.dino.global_crops == 2);
  CHECK(ok.augment.dino.local_size == 64);

  const auto struct_error = [](DinoConfig c) {
    try {
      validate_dino_config(c);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(struct_error(DinoConfig{}).empty());
  DinoConfig c;
  c.blur_p_local = -0.1;
  CHECK(struct_error(c).find("augment.dino.blur_p_local") == 0);
  c = DinoConfig{};
  c.local_scale_max = 1.5;
  CHECK(struct_error(c).find("augment.dino.local_scale_max") == 0);
  c = DinoConfig{};
  c.global_scale_min = 0.5;
  c.global_scale_max = 0.4;
  CHECK(struct_error(c).find("augment.dino.global_scale_min") == 0);
  c = DinoConfig{};
  c.local_size = 0;
  CHECK(struct_error(c).find("augment.dino.local_size") == 0);
}
