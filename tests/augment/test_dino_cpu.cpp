// The DINO CPU reference, one operation at a time against hand-computed values, the resize against
// LibTorch's own antialiased bicubic interpolate, and the whole pipeline's order and batching.
#include <doctest/doctest.h>

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "augment/dino_cpu.hpp"
#include "core/error.hpp"

using namespace synth;

namespace {

ImageU8 random_image(int h, int w, uint64_t seed) {
  ImageU8 img;
  img.height = h;
  img.width = w;
  img.pixels.resize(img.bytes());
  CounterRng rng(seed, 0, RngPurpose::kNoise, 0);
  for (auto& p : img.pixels) p = uint8_t(rng.below(256));
  return img;
}

ImageU8 image_of(int h, int w, std::vector<uint8_t> px) {
  ImageU8 img;
  img.height = h;
  img.width = w;
  img.pixels = std::move(px);
  return img;
}

PlanarImage pixel(float r, float g, float b) {
  PlanarImage p(1, 1);
  p.data = {r, g, b};
  return p;
}

const float kZero[3] = {0, 0, 0}, kOne[3] = {1, 1, 1};

}  // namespace

TEST_CASE("resized crop: identity, 2x2 mean, border-renormalized upscale, clamp") {
  const ImageU8 img = random_image(5, 7, 1);
  const PlanarImage same = dino_resized_crop(img, {1, 2, 3, 4}, 3, 4);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x)
        CHECK(same.at(c, y, x) == img.pixels[(size_t(1 + y) * 7 + 2 + x) * 3 + c] / 255.0f);
  // 2x2 -> 1x1: scale 2, centre 1, both taps at distance 0.25 of the scaled kernel: the mean.
  const ImageU8 four = image_of(2, 2, {10, 20, 30, 50, 60, 70, 90, 100, 110, 130, 140, 150});
  const PlanarImage one = dino_resized_crop(four, {0, 0, 2, 2}, 1, 1);
  CHECK(one.at(0, 0, 0) == doctest::Approx((10 + 50 + 90 + 130) / 4.0 / 255.0).epsilon(1e-6));
  CHECK(one.at(2, 0, 0) == doctest::Approx((30 + 70 + 110 + 150) / 4.0 / 255.0).epsilon(1e-6));
  // 1x2 -> 1x4: output 0 has centre 0.25, taps x = 0, 1 at distances 0.25, 1.25 (taps at -1, -2
  // are outside): k(0.25) = 0.8671875, k(1.25) = -0.0703125, renormalized by their sum 0.796875.
  const ImageU8 row = image_of(1, 2, {100, 100, 100, 200, 200, 200});
  const PlanarImage up = dino_resized_crop(row, {0, 0, 1, 2}, 1, 4);
  const double w0 = 0.8671875 / 0.796875, w1 = -0.0703125 / 0.796875;
  CHECK(up.at(1, 0, 0) == doctest::Approx((w0 * 100 + w1 * 200) / 255.0).epsilon(1e-6));
  CHECK(up.at(1, 0, 3) == doctest::Approx((w0 * 200 + w1 * 100) / 255.0).epsilon(1e-6));
  // A black-white edge overshoots below 0 and above 1 with a = -0.5; the result is clamped.
  const ImageU8 edge = image_of(1, 4, {0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255});
  const PlanarImage e = dino_resized_crop(edge, {0, 0, 1, 4}, 1, 16);
  float lo = 1, hi = 0;
  for (const float v : e.data) lo = std::min(lo, v), hi = std::max(hi, v);
  CHECK(lo == 0.0f);
  CHECK(hi == 1.0f);
}

TEST_CASE("resized crop equals LibTorch's antialiased bicubic interpolate (clamped), down and up") {
  const ImageU8 img = random_image(61, 83, 2);
  const torch::Tensor full =
      torch::from_blob(const_cast<uint8_t*>(img.pixels.data()), {61, 83, 3}, torch::kUInt8).permute({2, 0, 1}).to(torch::kFloat32) / 255.0;
  struct Case {
    DinoBox box;
    int oh, ow;
  };
  for (const Case c : {Case{{3, 5, 50, 70}, 17, 23}, Case{{0, 0, 61, 83}, 9, 9}, Case{{10, 20, 7, 5}, 24, 24},
                       Case{{1, 2, 30, 11}, 12, 29}}) {
    CAPTURE(c.oh);
    CAPTURE(c.ow);
    const PlanarImage ours = dino_resized_crop(img, c.box, c.oh, c.ow);
    const torch::Tensor crop = full.slice(1, c.box.top, c.box.top + c.box.height).slice(2, c.box.left, c.box.left + c.box.width);
    const torch::Tensor ref = torch::nn::functional::interpolate(
                                  crop.unsqueeze(0), torch::nn::functional::InterpolateFuncOptions()
                                                         .size(std::vector<int64_t>{c.oh, c.ow})
                                                         .mode(torch::kBicubic)
                                                         .align_corners(false)
                                                         .antialias(true))
                                  .squeeze(0)
                                  .clamp(0, 1)
                                  .contiguous();
    const torch::Tensor mine = torch::from_blob(const_cast<float*>(ours.data.data()), {3, c.oh, c.ow}, torch::kFloat32);
    const double err = (mine - ref).abs().max().item<double>();
    INFO("max abs error vs torch " << err);
    CHECK(err < 2e-6);
  }
}

TEST_CASE("hflip, brightness, contrast, saturation") {
  PlanarImage img(1, 3);
  img.data = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f};
  dino_hflip(img);
  CHECK(img.data == std::vector<float>{0.3f, 0.2f, 0.1f, 0.6f, 0.5f, 0.4f, 0.9f, 0.8f, 0.7f});

  PlanarImage b = pixel(0.5f, 0.8f, 0.0f);
  dino_adjust_brightness(b, 1.5f);
  CHECK(b.data == std::vector<float>{0.75f, 1.0f, 0.0f});

  // Two pixels, gray 0.299 and 0.587: mean 0.443; factor 0.5 pulls halfway to it.
  PlanarImage c(1, 2);
  c.data = {1, 0, 0, 1, 0, 0};
  dino_adjust_contrast(c, 0.5f);
  CHECK(c.at(0, 0, 0) == doctest::Approx(0.5 + 0.5 * 0.443).epsilon(1e-6));
  CHECK(c.at(0, 0, 1) == doctest::Approx(0.5 * 0.443).epsilon(1e-6));
  CHECK(c.at(1, 0, 1) == doctest::Approx(0.5 + 0.5 * 0.443).epsilon(1e-6));
  // Factor 3 clamps: 3 - 2 * 0.443 > 1 and -2 * 0.443 < 0.
  PlanarImage c3(1, 2);
  c3.data = {1, 0, 0, 1, 0, 0};
  dino_adjust_contrast(c3, 3.0f);
  CHECK(c3.data == std::vector<float>{1, 0, 0, 1, 0, 0});

  PlanarImage s0 = pixel(1, 0, 0);
  dino_adjust_saturation(s0, 0.0f);
  for (const float v : s0.data) CHECK(v == doctest::Approx(0.299).epsilon(1e-6));
  PlanarImage s2 = pixel(0.5f, 0.25f, 0.25f);  // gray 0.32475
  dino_adjust_saturation(s2, 2.0f);
  CHECK(s2.data[0] == doctest::Approx(2 * 0.5 - 0.32475).epsilon(1e-6));
  CHECK(s2.data[1] == doctest::Approx(2 * 0.25 - 0.32475).epsilon(1e-5));
}

TEST_CASE("hue rotates through torchvision's hsv round trip; gray pixels are fixed points") {
  PlanarImage red = pixel(1, 0, 0);
  dino_adjust_hue(red, 1.0f / 3.0f);
  CHECK(red.data[0] == doctest::Approx(0.0));
  CHECK(red.data[1] == doctest::Approx(1.0));
  CHECK(red.data[2] == doctest::Approx(0.0));
  // h 0, s 0.5, v 0.5 shifted by 0.5: sector 3, f 0 -> (p, q, v) = (0.25, 0.5, 0.5).
  PlanarImage dull = pixel(0.5f, 0.25f, 0.25f);
  dino_adjust_hue(dull, 0.5f);
  CHECK(dull.data[0] == doctest::Approx(0.25));
  CHECK(dull.data[1] == doctest::Approx(0.5));
  CHECK(dull.data[2] == doctest::Approx(0.5));
  // Negative shift wraps: blue (h 2/3) - 0.1 -> h 0.5667, sector 3, f 0.4: (p, q, v) = (0, 0.6, 1).
  PlanarImage blue = pixel(0, 0, 1);
  dino_adjust_hue(blue, -0.1f);
  CHECK(blue.data[0] == doctest::Approx(0.0));
  CHECK(blue.data[1] == doctest::Approx(0.6).epsilon(1e-5));
  CHECK(blue.data[2] == doctest::Approx(1.0));
  PlanarImage gray = pixel(0.3f, 0.3f, 0.3f);
  dino_adjust_hue(gray, 0.37f);
  CHECK(gray.data == std::vector<float>{0.3f, 0.3f, 0.3f});
  // Full turn is the identity up to rounding on a random colour.
  PlanarImage any = pixel(0.9f, 0.2f, 0.55f);
  dino_adjust_hue(any, 0.0f);
  CHECK(any.data[0] == doctest::Approx(0.9).epsilon(1e-6));
  CHECK(any.data[1] == doctest::Approx(0.2).epsilon(1e-5));
  CHECK(any.data[2] == doctest::Approx(0.55).epsilon(1e-6));
}

TEST_CASE("grayscale, solarize, normalize") {
  PlanarImage g = pixel(1.0f, 0.5f, 0.0f);
  dino_grayscale(g);
  for (const float v : g.data) CHECK(v == doctest::Approx(0.299 + 0.2935).epsilon(1e-6));

  PlanarImage s(1, 1);
  s.data = {0.6f, 0.5f, 128.0f / 255.0f};
  dino_solarize(s);
  CHECK(s.data[0] == doctest::Approx(0.4));
  CHECK(s.data[1] == 0.5f);  // 0.5 < 128/255 stays
  CHECK(s.data[2] == 1.0f - 128.0f / 255.0f);

  PlanarImage n = pixel(0.5f, 0.5f, 0.5f);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  dino_normalize(n, mean, std);
  CHECK(n.data[0] == (0.5f - 0.485f) / 0.229f);
  CHECK(n.data[2] == (0.5f - 0.406f) / 0.225f);
}

TEST_CASE("gaussian blur: kernel size 2 ceil(3 sigma) + 1, torchvision kernel, reflect padding") {
  CHECK(dino_blur_kernel_size(0.1f) == 3);
  CHECK(dino_blur_kernel_size(1.0f) == 7);
  CHECK(dino_blur_kernel_size(1.01f) == 9);
  CHECK(dino_blur_kernel_size(2.0f) == 13);
  const std::vector<float> k = dino_gaussian_kernel1d(3, 1.0f);
  const double e = std::exp(-0.5), sum = 1 + 2 * e;
  CHECK(k[0] == doctest::Approx(e / sum).epsilon(1e-6));
  CHECK(k[1] == doctest::Approx(1 / sum).epsilon(1e-6));
  CHECK(k[2] == k[0]);
  // One row [a, b, c, d], sigma 0.3 (3 taps): x0 = k1 a + 2 k0 b (reflect maps -1 to 1),
  // x3 = k1 d + 2 k0 c; a height of 1 reflects onto itself vertically.
  PlanarImage row(1, 4);
  for (int c = 0; c < 3; ++c)
    for (int x = 0; x < 4; ++x) row.at(c, 0, x) = 0.1f * float(x + 1) + 0.2f * float(c);
  PlanarImage blurred = row;
  dino_gaussian_blur(blurred, 0.3f);
  const std::vector<float> k3 = dino_gaussian_kernel1d(3, 0.3f);
  for (int c = 0; c < 3; ++c) {
    CHECK(blurred.at(c, 0, 0) == doctest::Approx(k3[1] * row.at(c, 0, 0) + 2 * k3[0] * row.at(c, 0, 1)).epsilon(1e-6));
    CHECK(blurred.at(c, 0, 1) ==
          doctest::Approx(k3[0] * row.at(c, 0, 0) + k3[1] * row.at(c, 0, 1) + k3[2] * row.at(c, 0, 2)).epsilon(1e-6));
    CHECK(blurred.at(c, 0, 3) == doctest::Approx(k3[1] * row.at(c, 0, 3) + 2 * k3[0] * row.at(c, 0, 2)).epsilon(1e-6));
  }
  // A constant image stays constant even when the kernel (13 taps) is wider than the image.
  PlanarImage flat(5, 3);
  for (float& v : flat.data) v = 0.625f;
  dino_gaussian_blur(flat, 2.0f);
  for (const float v : flat.data) CHECK(v == doctest::Approx(0.625).epsilon(1e-6));
  // Blur matches a 2-D convolution with reflect padding computed by LibTorch.
  PlanarImage img(12, 10);
  CounterRng rng(4, 4, RngPurpose::kNoise);
  for (float& v : img.data) v = rng.uniform();
  const torch::Tensor t = torch::from_blob(img.data.data(), {1, 3, 12, 10}, torch::kFloat32).clone();
  dino_gaussian_blur(img, 1.3f);
  const int size = dino_blur_kernel_size(1.3f);
  const std::vector<float> k1 = dino_gaussian_kernel1d(size, 1.3f);
  const torch::Tensor kt = torch::from_blob(const_cast<float*>(k1.data()), {size}, torch::kFloat32);
  const torch::Tensor k2 = torch::outer(kt, kt).expand({3, 1, size, size}).contiguous();
  const torch::Tensor padded = torch::nn::functional::pad(
      t, torch::nn::functional::PadFuncOptions({size / 2, size / 2, size / 2, size / 2}).mode(torch::kReflect));
  const torch::Tensor ref = torch::nn::functional::conv2d(padded, k2, torch::nn::functional::Conv2dFuncOptions().groups(3));
  const torch::Tensor mine = torch::from_blob(img.data.data(), {1, 3, 12, 10}, torch::kFloat32);
  CHECK((mine - ref).abs().max().item<double>() < 1e-6);
}

TEST_CASE("the whole crop is the composition of the steps in DINO's order") {
  const ImageU8 img = random_image(40, 50, 3);
  DinoCropParams p;
  p.out_size = 16;
  p.box = {4, 6, 30, 33};
  p.flip = true;
  p.jitter = true;
  p.jitter_ops = 4;
  p.jitter_order = {{3, 1, 0, 2}};
  p.brightness = 1.2f;
  p.contrast = 0.7f;
  p.saturation = 1.1f;
  p.hue = -0.05f;
  p.grayscale = false;
  p.blur = true;
  p.sigma = 0.8f;
  p.solarize = true;
  const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  std::vector<float> out(3 * 16 * 16);
  dino_crop_cpu(img, p, mean, std, out.data());
  PlanarImage ref = dino_resized_crop(img, p.box, 16, 16);
  dino_hflip(ref);
  dino_adjust_hue(ref, p.hue);
  dino_adjust_contrast(ref, p.contrast);
  dino_adjust_brightness(ref, p.brightness);
  dino_adjust_saturation(ref, p.saturation);
  dino_gaussian_blur(ref, p.sigma);
  dino_solarize(ref);
  dino_normalize(ref, mean, std);
  CHECK(out == ref.data);
  // Nothing drawn: resize + normalize only.
  DinoCropParams plain;
  plain.out_size = 8;
  plain.box = {0, 0, 40, 50};
  plain.sigma = 1.0f;
  std::vector<float> o2(3 * 64);
  dino_crop_cpu(img, plain, kZero, kOne, o2.data());
  CHECK(o2 == dino_resized_crop(img, plain.box, 8, 8).data);
}

TEST_CASE("batches: shapes, image-major grouping, independence from batch composition") {
  DinoConfig cfg;
  cfg.global_crops = 2;
  cfg.global_size = 32;
  cfg.local_crops = 3;
  cfg.local_size = 12;
  const std::vector<double> mean = {0.485, 0.456, 0.406}, std = {0.229, 0.224, 0.225};
  const ImageU8 a = random_image(48, 64, 5), b = random_image(30, 20, 6), c = random_image(100, 90, 7);
  const DinoBatch three = dino_augment_cpu(cfg, mean, std, 9, {&a, &b, &c}, {10, 11, 12});
  CHECK(three.global.sizes() == torch::IntArrayRef({6, 3, 32, 32}));
  CHECK(three.local.sizes() == torch::IntArrayRef({9, 3, 12, 12}));
  const DinoBatch alone = dino_augment_cpu(cfg, mean, std, 9, {&b}, {11});
  CHECK(torch::equal(alone.global, three.global.slice(0, 2, 4)));
  CHECK(torch::equal(alone.local, three.local.slice(0, 3, 6)));
  CHECK(three.params[1][0].box.height <= 30);
  CHECK(!torch::equal(three.global[2], three.global[3]));
  cfg.local_crops = 0;
  const DinoBatch no_local = dino_augment_cpu(cfg, mean, std, 9, {&a}, {10});
  CHECK(no_local.local.size(0) == 0);
  cfg.global_scale_min = 2.0;
  CHECK_THROWS_AS(dino_augment_cpu(cfg, mean, std, 9, {&a}, {10}), InputError);
}
