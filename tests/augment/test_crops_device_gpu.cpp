// DINO crops on a GPU (CUDA flavor, skipped without a device): half crops for half-precision
// training match the CPU reference, and crops are made on the GPU of the images even when another
// GPU is current (the wrapper guards its inputs' device and refuses mixed devices).
#include <doctest/doctest.h>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAGuard.h>

#include <string>
#include <vector>

#include "augment/dino_gpu.hpp"
#include "augment/train_augment.hpp"
#include "core/error.hpp"

using namespace synth;

namespace {

struct Batch {
  Config cfg;
  std::vector<ImageU8> images;
  std::vector<ImageView> views;
  std::vector<int64_t> labels;
};

Batch make_batch() {
  Batch b;
  b.cfg.augment.kind = "dino";
  b.cfg.augment.dino.global_crops = 2;
  b.cfg.augment.dino.local_crops = 4;
  for (int i = 0; i < 4; ++i) {
    ImageU8 im;
    im.height = 200 + 10 * i;
    im.width = 260 - 20 * i;
    im.pixels.resize(im.bytes());
    for (size_t p = 0; p < im.pixels.size(); ++p) im.pixels[p] = uint8_t((p * 13 + size_t(i) * 7) % 256);
    b.images.push_back(std::move(im));
  }
  for (int i = 0; i < 4; ++i) {
    const ImageU8& im = b.images[size_t(i)];
    b.views.push_back(ImageView{im.pixels.data(), im.height, im.width, 3, uint64_t(50 + i)});
    b.labels.push_back(i);
  }
  return b;
}

void check_close(const std::vector<CropGroup>& gpu, const std::vector<CropGroup>& cpu, torch::Dtype dtype,
                 const torch::Device& device) {
  REQUIRE(gpu.size() == cpu.size());
  for (size_t g = 0; g < gpu.size(); ++g) {
    CAPTURE(g);
    CHECK(gpu[g].images.device().str() == device.str());
    CHECK(std::string(c10::toString(gpu[g].images.scalar_type())) == c10::toString(dtype));
    CHECK(gpu[g].images.is_contiguous(torch::MemoryFormat::ChannelsLast));
    const torch::Tensor diff = (gpu[g].images.to(torch::kCPU, torch::kFloat32) - cpu[g].images).abs();
    CHECK(diff.max().item<double>() <= 2e-2);
    CHECK(diff.mean().item<double>() <= 2e-3);
  }
}

}  // namespace

TEST_CASE("fp16 and bf16 training get fp16 crops that match the CPU reference") {
  const Batch b = make_batch();
  const auto cpu = augment_batch(b.cfg, 3, b.views, b.labels);
  const torch::Device dev(torch::kCUDA, 0);
  for (const char* precision : {"fp16", "bf16", "fp32"}) {
    CAPTURE(precision);
    const torch::Dtype dtype = gpu_crop_dtype(precision);
    check_close(augment_batch(b.cfg, 3, b.views, b.labels, dev, dtype), cpu, dtype, dev);
  }
}

TEST_CASE("crops are made on the images' GPU whatever GPU is current; mixed devices are refused") {
  if (torch::cuda::device_count() < 2) {
    MESSAGE("one GPU: cross-device test skipped");
    return;
  }
  const Batch b = make_batch();
  const auto cpu = augment_batch(b.cfg, 3, b.views, b.labels);
  const c10::cuda::CUDAGuard current(c10::Device(c10::kCUDA, 0));
  const torch::Device one(torch::kCUDA, 1);
  check_close(augment_batch(b.cfg, 3, b.views, b.labels, one, torch::kFloat16), cpu, torch::kFloat16, one);

  std::vector<torch::Tensor> sources;
  std::vector<std::vector<DinoCropParams>> params;
  for (size_t i = 0; i < 2; ++i) {
    const ImageU8& im = b.images[i];
    sources.push_back(torch::from_blob(const_cast<uint8_t*>(im.pixels.data()), {im.height, im.width, 3}, torch::kUInt8)
                          .to(torch::Device(torch::kCUDA, c10::DeviceIndex(i))));
    params.push_back(draw_dino_params(b.cfg.augment.dino, 3, 50 + i, im.height, im.width));
  }
  CHECK_THROWS_AS(dino_augment_gpu(b.cfg.augment.dino, b.cfg.augment.mean, b.cfg.augment.std, sources, params, torch::kFloat32),
                  Error);
}
