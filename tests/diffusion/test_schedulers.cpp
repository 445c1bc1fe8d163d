// Schedulers against diffusers: timestep grids exactly as in tests/fixtures/tiny-sd/vectors.safetensors
// (sched.<name>.<steps>.timesteps), plus an oracle check of each update rule: with a model that
// predicts the exact noise of a one-point data distribution, every deterministic sampler must
// land on that point (up to the final step's residual noise level).
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "diffusion/model_config.hpp"
#include "diffusion/scheduler.hpp"
#include "io/safetensors.hpp"
#include "support/scratch_dir.hpp"

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

// diffusers' from_config carries the keys a file states into another scheduler class and gives the
// keys it lacks that class's defaults. Expected values: diffusers 0.42.1, e.g.
// DPMSolverMultistepScheduler.from_config(PNDMScheduler.from_pretrained(dir).config).set_timesteps(10).
TEST_CASE("a scheduler built from another class's file: stated keys carry over, missing ones take the class's defaults") {
  synth::test::ScratchDir dir("sched");
  nlohmann::json file = nlohmann::json::parse(std::ifstream(kSd + "/scheduler/scheduler_config.json"));
  REQUIRE(file["_class_name"] == "PNDMScheduler");
  REQUIRE_FALSE(file.contains("timestep_spacing"));  // as SD v1.4 publishes it
  const auto load = [&](const nlohmann::json& j) {
    std::ofstream(dir.file("scheduler_config.json")) << j.dump();
    return synth::load_scheduler_config(dir.file("scheduler_config.json"));
  };
  const auto grid = [](const std::string& name, const synth::SchedulerConfig& c) {
    auto s = synth::make_scheduler(name, c);
    s->set_timesteps(10);
    return s->timesteps();
  };
  using V = std::vector<double>;
  const V leading = {901, 801, 701, 601, 501, 401, 301, 201, 101, 1};
  // Missing: each class's own spacing (DPM++ linspace; PNDM's leading grid repeats its second step).
  CHECK(grid("dpmpp2m", load(file)) == V{999, 899, 799, 699, 599, 500, 400, 300, 200, 100});
  CHECK(grid("ddim", load(file)) == leading);
  // Stated "leading": it carries into DPM++ and Euler too.
  file["timestep_spacing"] = "leading";
  CHECK(grid("dpmpp2m", load(file)) == V{901, 811, 721, 631, 541, 451, 361, 271, 181, 91});
  CHECK(grid("euler", load(file)) == leading);
  // ... unless the file lists it in _use_default_values (a config diffusers saved from defaults).
  file["_use_default_values"] = {"timestep_spacing"};
  CHECK(grid("dpmpp2m", load(file)) == V{999, 899, 799, 699, 599, 500, 400, 300, 200, 100});

  // DDIM clips x0 to [-1, 1] by default (DDIMScheduler's clip_sample = True): with a zero noise
  // prediction x0 = x_t / sqrt(a_t), so a large x_t shows the clamp.
  const auto last_step = [&](const nlohmann::json& j) {
    auto s = synth::make_scheduler("ddim", load(j));
    s->set_timesteps(10);
    const double t = s->timesteps().front();
    return s->step(torch::zeros({1}), t, torch::full({1}, 3.0)).item<double>();
  };
  nlohmann::json no_clip = file, clip = file;
  clip.erase("clip_sample");
  no_clip["clip_sample"] = false;
  const double a_prev = synth::make_scheduler("ddim", load(file))->alphas_cumprod().at(801);
  CHECK(last_step(clip) == doctest::Approx(std::sqrt(a_prev) * 1.0));
  CHECK(last_step(no_clip) > 2 * std::sqrt(a_prev));
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
