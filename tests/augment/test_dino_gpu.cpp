// GPU parity (CUDA flavor only; the CMake glob builds test_*_gpu.cpp only with SYNTH_CUDA): the
// fused kernels against the CPU reference for the same parameters on random images of several
// sizes, fp32 and fp16, every operation forced on in some crops. Issue bound after normalization:
// max abs error <= 2e-2, mean abs error <= 2e-3.
#include <doctest/doctest.h>

#include <torch/torch.h>

#include <vector>

#include "augment/dino_cpu.hpp"
#include "augment/dino_gpu.hpp"
#include "augment/train_augment.hpp"
#include <torch/cuda.h>
#include "core/error.hpp"

using namespace synth;

namespace {

ImageU8 random_image(int h, int w, uint64_t seed) {
  ImageU8 img;
  img.height = h;
  img.width = w;
  img.pixels.resize(img.bytes());
  CounterRng rng(seed, 0, RngPurpose::kNoise, 0);
  // Smooth gradients plus noise, so blur, contrast and hue all see structure.
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const int v = (x * (c + 1) * 255 / w + y * 255 / h) / 2 + int(rng.below(64)) - 32;
        img.pixels[(size_t(y) * w + x) * 3 + size_t(c)] = uint8_t(std::min(255, std::max(0, v)));
      }
  return img;
}

}  // namespace

TEST_CASE("GPU crops match the CPU reference for the same parameters") {
  if (!torch::cuda::is_available()) {
    MESSAGE("no CUDA device: GPU parity skipped");
    return;
  }
  DinoConfig cfg;
  cfg.global_crops = 2;
  cfg.local_crops = 8;
  const std::vector<double> mean = {0.485, 0.456, 0.406}, std = {0.229, 0.224, 0.225};
  std::vector<ImageU8> images;
  const int sizes[][2] = {{384, 512}, {97, 131}, {480, 640}, {33, 45}, {1024, 300}, {224, 224}};
  for (int i = 0; i < 6; ++i) images.push_back(random_image(sizes[i][0], sizes[i][1], uint64_t(i)));
  std::vector<const ImageU8*> ptrs;
  std::vector<std::vector<DinoCropParams>> params;
  for (size_t b = 0; b < images.size(); ++b) {
    ptrs.push_back(&images[b]);
    auto crops = draw_dino_params(cfg, 17, 1000 + b, images[b].height, images[b].width);
    // Force every operation on somewhere: all four jitter ops in several orders, grayscale, big
    // and small blur, solarize.
    for (DinoCropParams& p : crops)
      if ((p.crop + int(b)) % 3 == 0) {
        p.jitter = true;
        p.grayscale = p.crop % 2 == 0;
        p.blur = true;
        p.sigma = p.crop % 4 == 0 ? 2.0f : 0.3f;
        p.solarize = true;
      }
    params.push_back(crops);
  }
  const DinoBatch cpu = dino_augment_cpu_with(cfg, mean, std, ptrs, params);
  for (const torch::Dtype dtype : {torch::kFloat32, torch::kFloat16}) {
    CAPTURE(dtype);
    const DinoGpuBatch gpu = dino_augment_gpu(cfg, mean, std, ptrs, params, dtype);
    torch::cuda::synchronize();
    CHECK(gpu.global.sizes() == cpu.global.sizes());
    CHECK(gpu.local.sizes() == cpu.local.sizes());
    CHECK(gpu.global.is_contiguous(torch::MemoryFormat::ChannelsLast));
    for (const auto& [name, g, c] : {std::make_tuple("global", gpu.global, cpu.global), std::make_tuple("local", gpu.local, cpu.local)}) {
      const torch::Tensor diff = (g.to(torch::kCPU, torch::kFloat32) - c).abs();
      const double max_err = diff.max().item<double>(), mean_err = diff.mean().item<double>();
      INFO(name << ": max abs error " << max_err << ", mean abs error " << mean_err);
      CHECK(max_err <= 2e-2);
      CHECK(mean_err <= 2e-3);
      MESSAGE(name << " " << (dtype == torch::kFloat16 ? "fp16" : "fp32") << ": max abs " << max_err << ", mean abs " << mean_err);
    }
  }
}

TEST_CASE("GPU crops reject a box outside its image") {
  if (!torch::cuda::is_available()) return;
  DinoConfig cfg;
  cfg.local_crops = 0;
  const ImageU8 img = random_image(50, 60, 1);
  auto params = draw_dino_params(cfg, 1, 1, 50, 60);
  params[0].box = {10, 10, 50, 10};
  CHECK_THROWS_AS(dino_augment_gpu(cfg, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}, {&img}, {params}, torch::kFloat32), Error);
}

TEST_CASE("the trainer's augment_batch on a CUDA device gives the CPU crops and labels") {
  if (!torch::cuda::is_available()) return;
  Config cfg;
  cfg.augment.kind = "dino";
  cfg.augment.dino.global_crops = 1;
  cfg.augment.dino.local_crops = 8;
  std::vector<ImageU8> images;
  for (int b = 0; b < 5; ++b) images.push_back(random_image(300 + 20 * b, 400 - 30 * b, uint64_t(b)));
  std::vector<ImageView> views;
  std::vector<int64_t> labels;
  for (int b = 0; b < 5; ++b) {
    const ImageU8& im = images[size_t(b)];
    views.push_back(ImageView{im.pixels.data(), im.height, im.width, 3, uint64_t(1000 + b)});
    labels.push_back(b % 3);
  }
  const auto cpu = augment_batch(cfg, 11, views, labels);
  const auto gpu = augment_batch(cfg, 11, views, labels, torch::Device(torch::kCUDA));
  REQUIRE(cpu.size() == 2);
  REQUIRE(gpu.size() == 2);
  for (size_t g = 0; g < 2; ++g) {
    CAPTURE(g);
    CHECK(gpu[g].images.is_cuda());
    CHECK(gpu[g].images.is_contiguous(torch::MemoryFormat::ChannelsLast));
    CHECK(gpu[g].images.sizes() == cpu[g].images.sizes());
    CHECK(torch::equal(gpu[g].labels, cpu[g].labels));
    const torch::Tensor diff = (gpu[g].images.to(torch::kCPU) - cpu[g].images).abs();
    MESSAGE("group " << g << ": max abs " << diff.max().item<double>() << ", mean abs " << diff.mean().item<double>());
    CHECK(diff.max().item<double>() <= 2e-2);
    CHECK(diff.mean().item<double>() <= 2e-3);
  }
}
