// The generator's GPU path, as far as a CPU can check it: its device comes from generator.device
// and the rank's environment through resolve_device (an index of the environment reaches the
// models), and the uint8 conversion it runs on the GPU is the CPU one, checked pixel by pixel
// against a plain reference including halves and clamping.
#include <doctest/doctest.h>

#include <cfenv>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "config/config.hpp"
#include "core/error.hpp"
#include "diffusion/sampler.hpp"
#include "generate/devices.hpp"
#include "generate/generator.hpp"
#include "support/input_error.hpp"
#include "support/tiny_sd_config.hpp"

namespace {

using synth::test::input_error;

synth::DistEnv env_of(const std::map<std::string, std::string>& v) {
  return synth::dist_env_from([&v](const char* name) -> const char* {
    auto it = v.find(name);
    return it == v.end() ? nullptr : it->second.c_str();
  });
}

synth::Config tiny_config() { return synth::test::tiny_sd_config(2, 2, 1, {"c"}); }

int cuda_devices() { return torch::cuda::is_available() ? int(torch::cuda::device_count()) : 0; }

// One pixel as the sampler's contract says, in plain float arithmetic: x / 2 + 0.5, clamped to
// [0, 1], times 255, rounded to nearest with halves to even (the default rounding mode).
uint8_t reference_u8(float x) {
  float v = x / 2.0f + 0.5f;
  v = std::min(1.0f, std::max(0.0f, v));
  return uint8_t(std::nearbyint(v * 255.0f));
}

// Inputs whose scaled value v * 255 is exactly k + 0.5 in float arithmetic (so rounding decides),
// for every level k where such a float exists with v in [0.25, 1] (there x / 2 + 0.5 gives v back
// exactly).
std::vector<float> half_way_inputs(int* even_levels) {
  std::vector<float> xs;
  *even_levels = 0;
  for (int k = 64; k < 255; ++k) {
    const float t = float(k) + 0.5f;
    const float v = float(double(t) / 255.0);
    if (v < 0.25f || v * 255.0f != t) continue;
    const float x = (v - 0.5f) * 2.0f;
    if (x / 2.0f + 0.5f != v) continue;
    xs.push_back(x);
    if (k % 2 == 0) ++*even_levels;
  }
  return xs;
}

}  // namespace

TEST_CASE("the generator's and the trainer's devices come from their keys and the rank's LOCAL_RANK") {
  synth::Config c = tiny_config();
  const synth::DistEnv rank3 = env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "3"}});
  c.generator.device = "cuda";
  c.train.device = "cuda";
  CHECK(synth::generator_device(c, rank3.local_rank) == torch::Device(torch::kCUDA, 3));
  CHECK(synth::train_device(c, rank3.local_rank) == torch::Device(torch::kCUDA, 3));
  c.generator.device = "cuda:1";
  c.train.device = "cpu";
  CHECK(synth::generator_device(c, rank3.local_rank) == torch::Device(torch::kCUDA, 1));
  CHECK(synth::generator_device(c, 0) == torch::Device(torch::kCUDA, 1));
  CHECK(synth::train_device(c, rank3.local_rank) == torch::Device(torch::kCPU));
  c.generator.device = "cpu";
  CHECK(synth::generator_device(c, rank3.local_rank) == torch::Device(torch::kCPU));
  c.generator.device = "cuda:x";
  CHECK(input_error([&] { synth::generator_device(c, 0); }).rfind("generator.device = \"cuda:x\" is not a device", 0) == 0);
  c.train.device = "gpu";
  CHECK(input_error([&] { synth::train_device(c, 0); }).rfind("train.device = \"gpu\" is not a device", 0) == 0);
}

TEST_CASE("synthetic_image_source puts its models on the rank's device, or names generator.device") {
  synth::Config c = tiny_config();
  c.generator.device = "cuda:-1";
  CHECK(input_error([&] { synth::synthetic_image_source(c, true, env_of({})); })
            .rfind("test.toml: generator.device = \"cuda:-1\" is not a device", 0) == 0);
  // A GPU this machine does not have: the message shows the index the rank's environment chose.
  if (cuda_devices() <= 3) {
    c.generator.device = "cuda";
    const std::string e = input_error([&] {
      synth::synthetic_image_source(c, true, env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "3"}}));
    });
    CHECK(e.rfind("test.toml: generator.device = \"cuda\" (cuda:3 on this rank) but this", 0) == 0);
  }
  c.generator.device = "cuda:127";
  CHECK(input_error([&] { synth::synthetic_image_source(c, true, env_of({})); })
            .rfind("test.toml: generator.device = \"cuda:127\" (cuda:127 on this rank) but this", 0) == 0);
  // A trainer fed by generator ranks loads no model, so needs no GPU for it.
  c.generator.device = "cuda:127";
  CHECK_FALSE(bool(synth::synthetic_image_source(c, false, env_of({})).make_producer));
}

TEST_CASE("decoded_to_u8 is the per-pixel rule: halves to even, clamping, NCHW -> NHWC, any float dtype") {
  REQUIRE(std::fegetround() == FE_TONEAREST);
  int even_levels = 0;
  std::vector<float> xs = half_way_inputs(&even_levels);
  MESSAGE(xs.size() << " exact half-way inputs, " << even_levels << " of them at even levels");
  REQUIRE(even_levels >= 10);  // where halves-to-even and halves-away-from-zero differ
  const float inf = std::numeric_limits<float>::infinity();
  for (const float x : {-1.0f, 1.0f, 0.0f, -1.5f, 1.5f, -100.0f, 100.0f, inf, -inf, 1e-8f, -1e-8f, 0.99999f, -0.99999f})
    xs.push_back(x);
  torch::manual_seed(3);
  const torch::Tensor noise = torch::randn({600}) * 1.2;
  for (int64_t i = 0; i < noise.numel(); ++i) xs.push_back(noise[i].item<float>());
  const int64_t b = 2, h = 7, w = 11, n = b * 3 * h * w;
  while (int64_t(xs.size()) % n) xs.push_back(float(xs.size() % 97) / 48.0f - 1.0f);

  for (int64_t start = 0; start < int64_t(xs.size()); start += n) {
    const torch::Tensor x = torch::from_blob(xs.data() + start, {b, 3, h, w}, torch::kFloat32).clone();
    for (const torch::Dtype dtype : {torch::kFloat32, torch::kFloat16, torch::kBFloat16}) {
      CAPTURE(dtype);
      const torch::Tensor in = x.to(dtype);
      const torch::Tensor u8 = synth::decoded_to_u8(in);
      REQUIRE(std::string(c10::toString(u8.scalar_type())) == "Byte");
      REQUIRE(u8.sizes() == torch::IntArrayRef{b, h, w, 3});
      REQUIRE(u8.is_contiguous());
      const torch::Tensor in32 = in.to(torch::kFloat32).contiguous();
      const float* px = in32.data_ptr<float>();
      const uint8_t* pu = u8.data_ptr<uint8_t>();
      int wrong = 0;
      for (int64_t i = 0; i < b; ++i)
        for (int64_t c = 0; c < 3; ++c)
          for (int64_t y = 0; y < h; ++y)
            for (int64_t xx = 0; xx < w; ++xx) {
              const float v = px[((i * 3 + c) * h + y) * w + xx];
              const uint8_t got = pu[((i * h + y) * w + xx) * 3 + c];
              if (got != reference_u8(v) && wrong++ < 5)
                FAIL_CHECK("input " << v << " gave " << int(got) << ", expected " << int(reference_u8(v)));
            }
      CHECK(wrong == 0);
    }
  }
  // The classic cases by hand: 0 is 127.5 -> 128; the ends and beyond clamp.
  const torch::Tensor ends = torch::tensor({-1.0f, 0.0f, 1.0f, -7.0f, 7.0f}).view({1, 1, 1, 5}).expand({1, 3, 1, 5});
  const torch::Tensor u8 = synth::decoded_to_u8(ends);
  CHECK(u8[0][0][0][0].item<int>() == 0);
  CHECK(u8[0][0][1][0].item<int>() == 128);
  CHECK(u8[0][0][2][0].item<int>() == 255);
  CHECK(u8[0][0][3][1].item<int>() == 0);
  CHECK(u8[0][0][4][2].item<int>() == 255);
}

TEST_CASE("sampler images are decoded_to_u8 of the VAE output, with or without keeping it") {
  synth::StableDiffusion sd(synth::test::kTinySd, torch::kCPU, torch::kFloat32);
  CHECK(sd.device() == torch::Device(torch::kCPU));
  synth::SamplerOptions o;
  o.scheduler = "ddim";
  o.steps = 2;
  o.width = 32;
  o.height = 24;
  const torch::Tensor noise = sd.initial_noise({4, 5}, 9, o.width, o.height);
  const synth::SampleOutput kept = sd.sample({"a cat", "a dog"}, noise, o);
  REQUIRE(kept.decoded.defined());
  const torch::Tensor u8 = synth::decoded_to_u8(kept.decoded);
  REQUIRE(kept.images.size() == 2);
  for (int64_t i = 0; i < 2; ++i) {
    const synth::ImageU8& im = kept.images[size_t(i)];
    CHECK(std::vector<uint8_t>(u8[i].data_ptr<uint8_t>(), u8[i].data_ptr<uint8_t>() + u8[i].numel()) == im.pixels);
  }
  o.keep_decoded = false;
  const synth::SampleOutput lean = sd.sample({"a cat", "a dog"}, noise, o);
  CHECK_FALSE(lean.decoded.defined());
  REQUIRE(lean.images.size() == 2);
  CHECK(lean.images[0].pixels == kept.images[0].pixels);
  CHECK(lean.images[1].pixels == kept.images[1].pixels);
  CHECK(torch::equal(lean.latents, kept.latents));
}
