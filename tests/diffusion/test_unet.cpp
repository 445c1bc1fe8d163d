// U-Net parity with diffusers: unet.out of tests/fixtures/tiny-sd/vectors.safetensors from unet.sample,
// unet.timestep (981, 500, 1) and text.last_hidden_state; relative L2 below 1e-4 (README there).
#include <doctest/doctest.h>

#include "support/tensors.hpp"

#include "core/error.hpp"
#include "diffusion/unet.hpp"
#include "diffusion/weights.hpp"
#include "io/safetensors.hpp"

namespace {
const std::string kSd = SYNTH_TEST_DATA "/tiny-sd";
using synth::test::rel_l2;
}  // namespace

TEST_CASE("U-Net matches diffusers on non-square latents at three timesteps") {
  torch::NoGradGuard no_grad;
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  synth::UNet unet = synth::load_unet(kSd + "/unet");
  const auto sample = vectors.tensor("unet.sample"), ctx = vectors.tensor("text.last_hidden_state"),
             ref = vectors.tensor("unet.out");
  const auto t = vectors.tensor_raw("unet.timestep");
  const auto out = unet->forward(sample, t, ctx);
  REQUIRE(out.sizes() == ref.sizes());
  const double err = rel_l2(out, ref);
  MESSAGE("U-Net relative L2 error: " << err);
  CHECK(err < 1e-4);

  // Image i's prediction does not depend on its batch neighbours.
  const auto one = unet->forward(sample.slice(0, 1, 2), t.slice(0, 1, 2), ctx.slice(0, 1, 2));
  CHECK(rel_l2(one, ref.slice(0, 1, 2)) < 1e-4);
}

TEST_CASE("U-Net config errors name the file") {
  synth::UNetConfig c = synth::load_unet_config(kSd + "/unet/config.json");
  c.mid_block_type = "UNetMidBlock2DSimpleCrossAttn";
  CHECK_THROWS_AS(synth::UNet{c}, synth::InputError);
  c = synth::load_unet_config(kSd + "/unet/config.json");
  c.down_block_types[0] = "AttnDownBlock2D";
  CHECK_THROWS_WITH_AS(synth::UNet{c}, doctest::Contains("unet/config.json"), synth::InputError);
}
