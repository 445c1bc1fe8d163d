// VAE decoder parity with diffusers' AutoencoderKL.decode on the tiny-sd reference vectors
// (tests/fixtures/tiny-sd/README.md: relative L2 < 1e-4).
#include <doctest/doctest.h>

#include <torch/torch.h>

#include "core/error.hpp"
#include "diffusion/blocks.hpp"
#include "diffusion/model_config.hpp"
#include "diffusion/vae.hpp"
#include "diffusion/weights.hpp"
#include "io/safetensors.hpp"

namespace {
const std::string kSd = std::string(SYNTH_TEST_DATA) + "/tiny-sd";
}

TEST_CASE("VAE config is read from config.json") {
  const auto c = synth::load_vae_config(kSd + "/vae/config.json");
  CHECK(c.block_out_channels == std::vector<int64_t>{32, 32, 64});
  CHECK(c.layers_per_block == 1);
  CHECK(c.latent_channels == 4);
  CHECK(c.scaling_factor == doctest::Approx(0.18215));
  CHECK(c.up_block_types.size() == 3);
}

TEST_CASE("VAE decoder matches diffusers' AutoencoderKL.decode") {
  const auto vae = synth::load_vae_decoder(kSd + "/vae");
  CHECK(vae.upscale() == 4);
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  const auto latent = vectors.tensor("vae.latent");
  const auto ref = vectors.tensor("vae.decoded");
  const auto out = vae.decode(latent);
  REQUIRE(out.sizes().vec() == ref.sizes().vec());
  const double err = ((out - ref).norm() / ref.norm()).item<double>();
  MESSAGE("VAE decoder relative L2 error: " << err);
  CHECK(err < 1e-4);
  // Each image decodes independently of its batch neighbours.
  const auto one = vae.decode(latent.slice(0, 1, 2));
  CHECK(((one[0] - ref[1]).norm() / ref[1].norm()).item<double>() < 1e-4);
}

TEST_CASE("whole model directory loads through one code path") {
  const auto m = synth::load_model_dir(kSd);
  CHECK(m.text_encoder.hidden_size == 32);
  CHECK(m.unet.block_out_channels == std::vector<int64_t>{32, 64, 64});
  CHECK(m.unet.attention_head_dim == std::vector<int64_t>{8, 8, 8});
  CHECK(m.unet.heads(0) == 8);
  CHECK(m.unet.transformer_layers_per_block == std::vector<int64_t>{1, 1, 1});
  CHECK(m.unet.cross_attention_dim == 32);
  CHECK(m.unet.mid_block_type == "UNetMidBlock2DCrossAttn");
  CHECK(m.unet.flip_sin_to_cos);
  CHECK(m.unet.sample_size == 8);
  CHECK(m.vae.scaling_factor == doctest::Approx(0.18215));
  CHECK(m.scheduler.class_name == "PNDMScheduler");
  CHECK(m.scheduler.beta_schedule == "scaled_linear");
  CHECK(m.scheduler.skip_prk_steps);
  CHECK_FALSE(m.scheduler.set_alpha_to_one);
  CHECK(m.scheduler.steps_offset == 1);
  CHECK(m.scheduler.timestep_spacing == "leading");
  CHECK(m.scheduler.present.count("skip_prk_steps") == 1);
  CHECK(m.scheduler.present.count("clip_sample") == 1);
  CHECK(m.scheduler.present.count("timestep_spacing") == 0);
}

// The time-embedding path is not exercised by the VAE (the U-Net parity test covers it end to
// end); this pins where it enters: proj(silu(temb)) is added after conv1 and before norm2, which
// is the same as shifting conv1's bias per image.
TEST_CASE("ResnetBlock2D adds the projected time embedding after conv1") {
  torch::manual_seed(11);
  synth::ResnetBlock2D with_t(synth::ResnetBlock2DOptions{8, 16, 12, 4, 1e-5, 1.0});
  synth::ResnetBlock2D shifted(synth::ResnetBlock2DOptions{8, 16, 0, 4, 1e-5, 1.0});
  auto x = torch::randn({1, 8, 5, 7});
  auto temb = torch::randn({1, 12});
  torch::NoGradGuard no_grad;
  auto src = with_t->named_parameters();
  for (auto& p : shifted->named_parameters()) p.value().copy_(src[p.key()]);
  auto proj = with_t->named_parameters();
  auto shift = torch::linear(torch::silu(temb), proj["time_emb_proj.weight"], proj["time_emb_proj.bias"])[0];
  shifted->named_parameters()["conv1.bias"].add_(shift);
  auto a = with_t->forward(x, temb), b = shifted->forward(x);
  CHECK(a.sizes().vec() == std::vector<int64_t>{1, 16, 5, 7});
  CHECK(torch::allclose(a, b, 1e-5, 1e-5));
  CHECK_THROWS_AS(with_t->forward(x), synth::Error);
}

TEST_CASE("Upsample2D and Downsample2D sizes") {
  synth::Upsample2D up(4, 4);
  synth::Downsample2D down1(4, 4, 1), down0(4, 4, 0);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 4, 5, 7});
  CHECK(up->forward(x).sizes().vec() == std::vector<int64_t>{2, 4, 10, 14});
  CHECK(up->forward(x, std::vector<int64_t>{9, 13}).sizes().vec() == std::vector<int64_t>{2, 4, 9, 13});
  CHECK(down1->forward(x).sizes().vec() == std::vector<int64_t>{2, 4, 3, 4});
  // padding 0 pads right/bottom by one first (diffusers): (5+1-3)/2+1 = 2, (7+1-3)/2+1 = 3.
  CHECK(down0->forward(x).sizes().vec() == std::vector<int64_t>{2, 4, 2, 3});
}
