// The generator on a GPU (CUDA flavor, skipped without a device): the uint8 conversion gives the
// CPU's bytes, generator threads on their own streams stream a range exactly once with the CPU's
// images (up to convolution rounding), and a model on cuda:N works whatever GPU is current.
#include <doctest/doctest.h>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAGuard.h>

#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "diffusion/sampler.hpp"
#include "generate/generator.hpp"
#include "stream/batcher.hpp"
#include "support/tiny_sd_config.hpp"

namespace {

synth::Config tiny_config(const std::string& device) {
  return synth::test::tiny_sd_config(3, 3, 2, {"c", "c_hc"}, device);
}

// Every image of [0, n) from a source, by index.
std::map<uint64_t, std::vector<uint8_t>> stream_all(const synth::ImageSource& source, uint64_t n) {
  synth::Ring ring(16, 32 * 24 * 3);
  auto producer = source.make_producer(ring, synth::IndexSequence::range(0, n));
  synth::OrderedBatcher batcher(ring, 4, 0, n);
  producer->start();
  std::map<uint64_t, std::vector<uint8_t>> images;
  while (auto slots = batcher.next())
    for (int s : *slots) {
      CHECK(images.count(ring.meta(s).index) == 0);
      images[ring.meta(s).index].assign(ring.data(s), ring.data(s) + 32 * 24 * 3);
      ring.release(s);
    }
  producer->join();
  return images;
}

int max_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  int d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(int(a[i]) - int(b[i])));
  return d;
}

}  // namespace

TEST_CASE("decoded_to_u8 on the GPU gives the CPU's bytes, fp32 and fp16") {
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({3, 3, 17, 19}) * 1.3;
  x.view(-1).slice(0, 0, 5).copy_(torch::tensor({0.0f, -1.0f, 1.0f, 5.0f, -5.0f}));
  for (const torch::Dtype dtype : {torch::kFloat32, torch::kFloat16}) {
    CAPTURE(dtype);
    const torch::Tensor in = x.to(dtype);
    const torch::Tensor gpu = synth::decoded_to_u8(in.cuda());
    CHECK(gpu.is_cuda());
    CHECK(torch::equal(gpu.cpu(), synth::decoded_to_u8(in)));
  }
}

TEST_CASE("generator threads on cuda stream [0, n) exactly once with the CPU's images") {
  const uint64_t n = 10;
  const auto gpu = stream_all(synth::synthetic_image_source(tiny_config("cuda")), n);
  const auto cpu = stream_all(synth::synthetic_image_source(tiny_config("cpu")), n);
  REQUIRE(gpu.size() == n);
  REQUIRE(cpu.size() == n);
  for (uint64_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const int d = max_diff(gpu.at(i), cpu.at(i));
    MESSAGE("image " << i << ": max |gpu - cpu| = " << d);
    CHECK(d <= 4);
  }
}

TEST_CASE("the sampler's pinned buffer is reused across batch sizes without stale pixels") {
  synth::StableDiffusion sd(synth::test::kTinySd, torch::Device(torch::kCUDA, 0), torch::kFloat32);
  synth::SamplerOptions o;
  o.scheduler = "ddim";
  o.steps = 2;
  o.width = 32;
  o.height = 24;
  o.keep_decoded = false;
  const auto big = sd.sample({"a", "b", "c"}, sd.initial_noise({1, 2, 3}, 4, 32, 24), o);
  const auto small = sd.sample({"d"}, sd.initial_noise({4}, 4, 32, 24), o);
  synth::StableDiffusion fresh(synth::test::kTinySd, torch::Device(torch::kCUDA, 0), torch::kFloat32);
  const auto alone = fresh.sample({"d"}, fresh.initial_noise({4}, 4, 32, 24), o);
  REQUIRE(big.images.size() == 3);
  REQUIRE(small.images.size() == 1);
  CHECK(small.images[0].pixels == alone.images[0].pixels);
  CHECK(big.images[2].pixels != small.images[0].pixels);
}

TEST_CASE("a generator on cuda:1 works while cuda:0 is current") {
  if (torch::cuda::device_count() < 2) {
    MESSAGE("one GPU: cuda:1 test skipped");
    return;
  }
  const c10::cuda::CUDAGuard current(c10::Device(c10::kCUDA, 0));
  const auto one = stream_all(synth::synthetic_image_source(tiny_config("cuda:1")), 6);
  const auto zero = stream_all(synth::synthetic_image_source(tiny_config("cuda:0")), 6);
  REQUIRE(one.size() == 6);
  for (uint64_t i = 0; i < 6; ++i) CHECK(max_diff(one.at(i), zero.at(i)) <= 4);
}
