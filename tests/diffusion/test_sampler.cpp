// Full guided sampling runs against diffusers (tests/fixtures/tiny-sd run.<sched>.*): prompts 0 and 1,
// 10 steps, guidance 7.5, given initial latents; final latents and decoded images within 1e-3
// relative L2 for all four schedulers. Plus: per-image noise is a function of the image index only.
#include <doctest/doctest.h>

#include "support/tensors.hpp"

#include "core/error.hpp"
#include "diffusion/sampler.hpp"
#include "io/safetensors.hpp"

namespace {
const std::string kSd = SYNTH_TEST_DATA "/tiny-sd";
using synth::test::rel_l2;
}  // namespace

TEST_CASE("guided sampling matches diffusers for pndm, ddim, dpmpp2m and euler") {
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  synth::StableDiffusion sd(kSd, torch::kCPU, torch::kFloat32);
  const std::vector<std::string> prompts = {"papillon, toy spaniel", "a photo of multiple different Shih-Tzu, toy dog"};
  for (const std::string name : {"pndm", "ddim", "dpmpp2m", "euler"}) {
    CAPTURE(name);
    synth::SamplerOptions o;
    o.scheduler = name;
    o.steps = 10;
    o.guidance = 7.5;
    o.width = 24;   // tiny VAE upsamples x4: 8x6 latents -> 32x24 pixels
    o.height = 32;
    const auto out = sd.sample(prompts, vectors.tensor("run." + name + ".init_latents"), o);
    const double el = rel_l2(out.latents, vectors.tensor("run." + name + ".final_latents"));
    const double ei = rel_l2(out.decoded, vectors.tensor("run." + name + ".image"));
    MESSAGE(name << ": final latents rel L2 " << el << ", image rel L2 " << ei);
    CHECK(el < 1e-3);
    CHECK(ei < 1e-3);
    REQUIRE(out.images.size() == 2);
    CHECK(out.images[0].height == 32);
    CHECK(out.images[0].width == 24);
  }
  CHECK(sd.cache().hits() > 0);  // the empty prompt and both prompts were encoded once
}

TEST_CASE("initial noise of image i does not depend on its batch") {
  synth::StableDiffusion sd(kSd, torch::kCPU, torch::kFloat32);
  const auto batch = sd.initial_noise({7, 12345, 3}, 42, 24, 32);
  const auto alone = sd.initial_noise({12345}, 42, 24, 32);
  CHECK(torch::equal(batch[1], alone[0]));
  CHECK(!torch::equal(batch[0], batch[2]));
  CHECK(std::abs(batch.mean().item<double>()) < 0.2);
  CHECK_THROWS_AS(sd.initial_noise({1}, 0, 25, 32), synth::InputError);
}
