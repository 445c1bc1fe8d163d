// Fuzzes the diffusers/transformers config.json readers of a Stable Diffusion model directory
// (src/diffusion/model_config.cpp: load_unet_config, load_vae_config, load_scheduler_config,
// load_model_dir's model_index.json checks; src/text/clip_text_encoder.cpp:
// load_text_encoder_config) and the schedulers built from a scheduler config
// (src/diffusion/scheduler.cpp: make_scheduler = diffusers' from_config for pndm, ddim, dpmpp2m and
// euler, set_timesteps, a whole sampling loop of step() on a 1-element latent).
//
// The input is one JSON file, read by every loader in turn (a corpus entry for one loader is a
// mutation seed for the others); it is also the model_index.json of a model folder whose four
// component configs are tests/fixtures/tiny-sd's.
#include "diffusion/model_config.hpp"
#include "diffusion/scheduler.hpp"
#include "fuzz_common.hpp"

#ifndef SYNTH_SOURCE_DIR
#error "SYNTH_SOURCE_DIR must name the repository root"
#endif

namespace {

const std::string& model_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const std::string d = fuzz::scratch_dir() + "/model";
    const fs::path src = fs::path(SYNTH_SOURCE_DIR) / "tests/fixtures/tiny-sd";
    for (const char* rel : {"text_encoder/config.json", "unet/config.json", "vae/config.json", "scheduler/scheduler_config.json"}) {
      fs::create_directories((fs::path(d) / rel).parent_path());
      fs::copy_file(src / rel, fs::path(d) / rel, fs::copy_options::overwrite_existing);
    }
    return d;
  }();
  return dir;
}

void run_schedulers(const synth::SchedulerConfig& config) {
  const torch::Tensor latent = torch::ones({1});
  for (const char* name : {"pndm", "ddim", "dpmpp2m", "euler"}) {
    std::unique_ptr<synth::Scheduler> s;
    if (!fuzz::expect_ok_or_error([&] { s = synth::make_scheduler(name, config); })) continue;
    fuzz::check(int64_t(s->alphas_cumprod().size()) == config.num_train_timesteps, "one alpha_bar per training step");
    // ... and as many steps as training steps (SD: 1000), where a leading grid with steps_offset ends
    // past the last training step.
    const int64_t all = std::min<int64_t>(config.num_train_timesteps, 2000);
    for (int64_t n : {int64_t(1), int64_t(2), int64_t(3), int64_t(10), int64_t(50), all}) {
      fuzz::expect_ok_or_error([&] {
        s->set_timesteps(n);
        (void)s->init_noise_sigma();
        if (n > 10) return;  // the grid alone; sampling loops only for short schedules
        torch::Tensor x = latent;
        for (double t : s->timesteps()) {
          const torch::Tensor in = s->scale_model_input(x, t);
          x = s->step(in * 0.5, t, x);
        }
      });
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  model_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string file = fuzz::scratch_dir() + "/config.json";
  fuzz::write_file(file, data, size);

  fuzz::expect_ok_or_error([&] {
    const synth::UNetConfig u = synth::load_unet_config(file);
    for (size_t i = 0; i < u.block_out_channels.size(); ++i)
      fuzz::check(u.heads(i) > 0 && u.block_out_channels[i] % u.heads(i) == 0, "heads divide the block channels");
  });
  fuzz::expect_ok_or_error([&] { synth::load_vae_config(file); });
  fuzz::expect_ok_or_error([&] {
    const synth::TextEncoderConfig t = synth::load_text_encoder_config(file);
    fuzz::check(t.num_attention_heads > 0 && t.hidden_size % t.num_attention_heads == 0, "heads divide hidden_size");
  });
  synth::SchedulerConfig sched;
  if (fuzz::expect_ok_or_error([&] { sched = synth::load_scheduler_config(file); })) run_schedulers(sched);

  fuzz::write_file(model_dir() + "/model_index.json", data, size);
  fuzz::expect_ok_or_error([&] { synth::load_model_dir(model_dir()); });
  return 0;
}
