// The simple CPU augmentation and the evaluation transform against hand-computed pixels, the
// RandomResizedCrop rule's statistics, and independence from batch composition.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "augment/simple_augment.hpp"
#include "core/rng.hpp"

using synth::CropBox;
using synth::ImageView;

namespace {

const std::vector<double> kZero = {0, 0, 0}, kOne = {1, 1, 1};

std::vector<uint8_t> ramp(int h, int w) {
  std::vector<uint8_t> px(size_t(h) * w * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t((i * 37 + 11) % 256);
  return px;
}

}  // namespace

TEST_CASE("resize_normalize: identity size, 2x2 average, flip, gray replication and normalization") {
  const std::vector<uint8_t> px = ramp(3, 4);
  const ImageView v{px.data(), 3, 4, 3, 0};
  std::vector<float> out(3 * 3 * 4);
  synth::resize_normalize(v, CropBox{0, 0, 3, 4}, 3, 4, false, kZero, kOne, out.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x)
        CHECK(out[size_t(c * 12 + y * 4 + x)] == doctest::Approx(px[size_t((y * 4 + x) * 3 + c)] / 255.0).epsilon(1e-6));
  // Flip mirrors columns.
  std::vector<float> flipped(out.size());
  synth::resize_normalize(v, CropBox{0, 0, 3, 4}, 3, 4, true, kZero, kOne, flipped.data());
  CHECK(flipped[0] == out[3]);
  CHECK(flipped[5] == out[6]);
  // A 2x2 box down to 1x1 is the mean of its four pixels (triangle filter of radius 2).
  const uint8_t four[12] = {10, 20, 30, 50, 60, 70, 90, 100, 110, 130, 140, 150};
  const ImageView q{four, 2, 2, 3, 0};
  float one[3];
  const std::vector<double> mean = {0.1, 0.2, 0.3}, std = {0.5, 0.25, 2.0};
  synth::resize_normalize(q, CropBox{0, 0, 2, 2}, 1, 1, false, mean, std, one);
  CHECK(one[0] == doctest::Approx(((10 + 50 + 90 + 130) / 4.0 / 255.0 - 0.1) / 0.5).epsilon(1e-6));
  CHECK(one[1] == doctest::Approx(((20 + 60 + 100 + 140) / 4.0 / 255.0 - 0.2) / 0.25).epsilon(1e-6));
  CHECK(one[2] == doctest::Approx(((30 + 70 + 110 + 150) / 4.0 / 255.0 - 0.3) / 2.0).epsilon(1e-6));
  // Upscaling 1 -> 2 pixels along x with a 2-pixel source: bilinear at centres 0.25 and 0.75 of each.
  const uint8_t row[6] = {0, 0, 0, 200, 200, 200};
  const ImageView r{row, 1, 2, 3, 0};
  float up[3 * 4];
  synth::resize_normalize(r, CropBox{0, 0, 1, 2}, 1, 4, false, kZero, kOne, up);
  CHECK(up[0] == doctest::Approx(0.0));
  CHECK(up[1] == doctest::Approx(50 / 255.0));
  CHECK(up[2] == doctest::Approx(150 / 255.0));
  CHECK(up[3] == doctest::Approx(200 / 255.0));
  // One gray channel is replicated.
  const uint8_t gray[1] = {51};
  float g[3];
  synth::resize_normalize(ImageView{gray, 1, 1, 1, 0}, CropBox{0, 0, 1, 1}, 1, 1, false, kZero, kOne, g);
  CHECK(g[0] == doctest::Approx(0.2));
  CHECK(g[2] == doctest::Approx(0.2));
}

TEST_CASE("RandomResizedCrop boxes: scale and ratio ranges, the mean area, the fallback, determinism") {
  const int H = 384, W = 512;
  double area_sum = 0;
  int n = 10000, fallbacks = 0;
  for (int i = 0; i < n; ++i) {
    synth::CounterRng rng(5, uint64_t(i), synth::RngPurpose::kAugment, 0);
    const CropBox b = synth::random_resized_crop_box(rng, H, W, 0.25, 1.0, 3.0 / 4, 4.0 / 3);
    REQUIRE(b.top >= 0);
    REQUIRE(b.left >= 0);
    REQUIRE(b.top + b.height <= H);
    REQUIRE(b.left + b.width <= W);
    const double frac = double(b.height) * b.width / (H * W);
    if (b.height == H && b.width == W) ++fallbacks;
    CHECK(frac <= 1.0 + 1e-9);
    CHECK(frac >= 0.25 * 0.98);  // rounding of the sides
    const double ratio = double(b.width) / b.height;
    CHECK(ratio >= 0.75 * 0.97);
    CHECK(ratio <= 4.0 / 3 * 1.03);
    area_sum += frac;
  }
  // Draws are uniform in [0.25, 1] but large ones at ratios below 4/3 do not fit a 4:3 image and
  // are redrawn, so the mean falls below 0.625: 0.5218 for this rule (2e5-draw simulation of
  // torchvision's get_params); 10^4 draws have a standard error of ~0.002.
  const double mean = area_sum / n;
  MESSAGE("mean area fraction " << mean << ", fallbacks " << fallbacks);
  CHECK(mean > 0.512);
  CHECK(mean < 0.532);
  CHECK(fallbacks < n / 100);
  // A 1x100 strip never fits a ratio <= 4/3 box of area >= 8%: the centre fallback clamps the ratio.
  synth::CounterRng rng(1, 1, synth::RngPurpose::kAugment, 0);
  const CropBox f = synth::random_resized_crop_box(rng, 1, 100, 0.08, 1.0, 3.0 / 4, 4.0 / 3);
  CHECK(f == CropBox{0, 49, 1, 1});
  synth::CounterRng a(9, 42, synth::RngPurpose::kAugment, 0), b(9, 42, synth::RngPurpose::kAugment, 0);
  CHECK(synth::random_resized_crop_box(a, H, W, 0.08, 1, 0.75, 4.0 / 3) ==
        synth::random_resized_crop_box(b, H, W, 0.08, 1, 0.75, 4.0 / 3));
}

TEST_CASE("an image's crop depends on (seed, index) only, not on its batch; flips are about half") {
  synth::AugmentConfig cfg;
  cfg.crop_size = 16;
  std::vector<std::vector<uint8_t>> pixels;
  std::vector<ImageView> batch;
  for (int i = 0; i < 64; ++i) pixels.push_back(ramp(20 + i % 7, 30 - i % 5));
  for (int i = 0; i < 64; ++i) batch.push_back(ImageView{pixels[size_t(i)].data(), 20 + i % 7, 30 - i % 5, 3, uint64_t(1000 + i)});
  const torch::Tensor all = synth::simple_augment_batch(cfg, 3, batch);
  CHECK(all.sizes() == torch::IntArrayRef({64, 3, 16, 16}));
  const torch::Tensor single = synth::simple_augment_batch(cfg, 3, {batch[37]});
  CHECK(torch::equal(single[0], all[37]));
  CHECK(!torch::equal(synth::simple_augment_batch(cfg, 4, {batch[37]})[0], all[37]));  // another seed

  // Flips, observed in the augmentation's output: with the crop fixed to the whole image (scale
  // and ratio 1), a left-to-right grey ramp comes out either as it was or mirrored.
  synth::AugmentConfig whole;
  whole.crop_size = 16;
  whole.scale_min = whole.scale_max = 1.0;
  whole.ratio_min = whole.ratio_max = 1.0;
  std::vector<uint8_t> gradient(16 * 16 * 3);
  for (size_t i = 0; i < gradient.size(); ++i) gradient[i] = uint8_t(17 * ((i / 3) % 16));
  const int n = 2000;
  std::vector<ImageView> views;
  for (int i = 0; i < n; ++i) views.push_back(ImageView{gradient.data(), 16, 16, 3, uint64_t(i)});
  const torch::Tensor out = synth::simple_augment_batch(whole, 3, views);
  const torch::Tensor first = out[0];
  const torch::Tensor upright = first[0][0][0].item<float>() < first[0][0][15].item<float>() ? first : first.flip(-1);
  const torch::Tensor mirrored = upright.flip(-1);
  CHECK(upright[1][5][15].item<float>() > upright[1][5][0].item<float>());
  int flips = 0;
  for (int i = 0; i < n; ++i) {
    const bool same = torch::allclose(out[i], upright, 0, 1e-5), flipped = torch::allclose(out[i], mirrored, 0, 1e-5);
    CHECK(same != flipped);  // one or the other, never a third picture
    flips += flipped;
  }
  CHECK(std::abs(flips - n / 2) < 4 * std::sqrt(n * 0.25));
}

TEST_CASE("eval_preprocess: shorter side to resize, centre crop") {
  const std::vector<uint8_t> px = ramp(20, 40);
  const ImageView v{px.data(), 20, 40, 3, 0};
  // resize 20 = the shorter side already: the crop is the centre 20x20 window, pixels unchanged.
  const torch::Tensor t = synth::eval_preprocess(v, 20, 20, kZero, kOne);
  CHECK(t.sizes() == torch::IntArrayRef({3, 20, 20}));
  for (int y : {0, 7, 19})
    for (int x : {0, 13, 19})
      CHECK(t[1][y][x].item<float>() == doctest::Approx(px[size_t((y * 40 + x + 10) * 3 + 1)] / 255.0).epsilon(1e-6));
  // Half size: PIL's antialiased bilinear, triangle of radius 2 input pixels around the centre 1.0
  // of output pixel 0: taps 0, 1, 2 weighted 0.75, 0.75, 0.25 (then normalized) on each axis.
  const torch::Tensor h = synth::eval_preprocess(v, 10, 10, kZero, kOne);
  const double w[3] = {0.75 / 1.75, 0.75 / 1.75, 0.25 / 1.75};
  double expect = 0;
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 3; ++x) expect += w[y] * w[x] * px[size_t((y * 40 + x + 10) * 3)] / 255.0;
  CHECK(h[0][0][0].item<float>() == doctest::Approx(expect).epsilon(1e-6));
}
