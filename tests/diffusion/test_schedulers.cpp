// Schedulers against diffusers: timestep grids exactly as in tests/data/tiny-sd/vectors.safetensors
// (sched.<name>.<steps>.timesteps), plus an oracle check of each update rule: with a model that
// predicts the exact noise of a one-point data distribution, every deterministic sampler must
// land on that point (up to the final step's residual noise level).
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.hpp"
#include "diffusion/model_config.hpp"
#include "diffusion/scheduler.hpp"
#include "io/safetensors.hpp"

namespace {
const std::string kSd = SYNTH_TEST_DATA "/tiny-sd";

synth::SchedulerConfig sd_config() { return synth::load_scheduler_config(kSd + "/scheduler/scheduler_config.json"); }
}  // namespace

TEST_CASE("timesteps of all four schedulers equal diffusers' for 50, 20 and 10 steps") {
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  for (const std::string name : {"pndm", "ddim", "dpmpp2m", "euler"}) {
    for (const int steps : {50, 20, 10}) {
      const std::string key = "sched." + name + "." + std::to_string(steps) + ".timesteps";
      CAPTURE(key);
      const auto ref = vectors.tensor(key, torch::kFloat64).contiguous();
      auto s = synth::make_scheduler(name, sd_config());
      s->set_timesteps(steps);
      REQUIRE(int64_t(s->timesteps().size()) == ref.numel());
      for (int64_t i = 0; i < ref.numel(); ++i) CHECK(s->timesteps()[i] == ref.data_ptr<double>()[i]);
    }
  }
}

TEST_CASE("every scheduler recovers a one-point data distribution from an exact noise oracle") {
  torch::manual_seed(0);
  const torch::Tensor x0 = torch::randn({2, 4, 8, 6});
  for (const std::string name : {"pndm", "ddim", "dpmpp2m", "euler"}) {
    CAPTURE(name);
    auto s = synth::make_scheduler(name, sd_config());
    s->set_timesteps(25);
    const auto& ac = s->alphas_cumprod();
    torch::Tensor x = torch::randn({2, 4, 8, 6}) * s->init_noise_sigma();
    const double start = (x - x0).norm().item<double>();
    for (const double t : s->timesteps()) {
      // The model sees the variance-preserving input x_t = sqrt(a) x0 + sqrt(1-a) eps.
      const torch::Tensor in = s->scale_model_input(x, t);
      const double a = ac.at(size_t(std::llround(t)));
      const torch::Tensor eps = (in - std::sqrt(a) * x0) / std::sqrt(1 - a);
      x = s->step(eps, t, x);
    }
    const double err = (x - x0).norm().item<double>() / x0.norm().item<double>();
    MESSAGE(name << ": relative distance to the data point " << err << " (start " << start / x0.norm().item<double>() << ")");
    CHECK(err < 0.05);
  }
}

TEST_CASE("scheduler bad input") {
  CHECK_THROWS_AS(synth::make_scheduler("lms", sd_config()), synth::InputError);
  auto s = synth::make_scheduler("ddim", sd_config());
  CHECK_THROWS_AS(s->set_timesteps(0), synth::InputError);
  CHECK_THROWS_AS(s->set_timesteps(1001), synth::InputError);
  auto c = sd_config();
  c.prediction_type = "v_prediction";
  CHECK_THROWS_AS(synth::make_scheduler("euler", c), synth::InputError);
}
