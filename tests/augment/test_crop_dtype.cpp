// The dtype of the DINO crops the trainer asks the GPU kernels for, per train.precision, and that
// asking for half crops leaves the CPU path (the float32 reference) untouched.
#include <doctest/doctest.h>

#include <torch/torch.h>

#include <string>
#include <vector>

#include "augment/train_augment.hpp"
#include "core/error.hpp"
#include "support/input_error.hpp"

namespace {
std::string crop_dtype(const std::string& precision) { return c10::toString(synth::gpu_crop_dtype(precision)); }
}  // namespace

TEST_CASE("gpu_crop_dtype: half crops for half-precision training, float32 otherwise") {
  CHECK(crop_dtype("fp32") == "Float");
  CHECK(crop_dtype("fp16") == "Half");
  // No bf16 kernel output: fp16 (finer than bf16, same range need), cast by autocast.
  CHECK(crop_dtype("bf16") == "Half");
  CHECK(synth::test::input_error([] { synth::gpu_crop_dtype("fp64"); }) ==
        "train.precision = \"fp64\" is not one of fp32 | fp16 | bf16");
}

TEST_CASE("CPU crops stay float32 whatever GPU crop dtype is asked for") {
  synth::Config cfg;
  cfg.augment.kind = "dino";
  cfg.augment.dino.global_crops = 2;
  cfg.augment.dino.local_crops = 2;
  cfg.augment.dino.global_size = 16;
  cfg.augment.dino.local_size = 8;
  synth::ImageU8 im;
  im.height = 20;
  im.width = 30;
  im.pixels.resize(im.bytes());
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t(i * 7 % 251);
  const std::vector<synth::ImageView> views = {{im.pixels.data(), im.height, im.width, 3, 5}};
  const auto f32 = synth::augment_batch(cfg, 1, views, {4});
  const auto half = synth::augment_batch(cfg, 1, views, {4}, torch::kCPU, torch::kFloat16);
  REQUIRE(f32.size() == 2);
  REQUIRE(half.size() == 2);
  for (size_t g = 0; g < 2; ++g) {
    CHECK(std::string(c10::toString(half[g].images.scalar_type())) == "Float");
    CHECK(torch::equal(half[g].images, f32[g].images));
  }
}
