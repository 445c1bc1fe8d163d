// Noise schedulers for Stable Diffusion v1 sampling, numerically matching diffusers
// (PNDMScheduler with skip_prk_steps, DDIMScheduler with eta 0, DPMSolverMultistepScheduler as
// DPM-Solver++(2M), EulerDiscreteScheduler), for epsilon-prediction models.
//
// Usage per image batch, as the diffusers pipeline does it:
//   s->set_timesteps(n); x = x_T * s->init_noise_sigma();
//   for t in s->timesteps(): eps = unet(s->scale_model_input(x, t), t); x = s->step(eps, t, x);
// Timesteps are doubles because Euler's may be fractional (they are whole numbers for SD configs).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "diffusion/model_config.hpp"

namespace synth {

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual void set_timesteps(int64_t num_inference_steps) = 0;  // also resets multistep state
  const std::vector<double>& timesteps() const { return timesteps_; }
  virtual double init_noise_sigma() const { return 1.0; }
  virtual torch::Tensor scale_model_input(const torch::Tensor& sample, double timestep) { return sample; }
  // One reverse step from `sample` at `timestep` given the model's noise prediction.
  virtual torch::Tensor step(const torch::Tensor& model_output, double timestep, const torch::Tensor& sample) = 0;
  const std::string& name() const { return name_; }
  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }

 protected:
  Scheduler(std::string name, const SchedulerConfig& config, const std::string& default_spacing);
  void check_steps(int64_t n) const;
  // Every timestep of the grid indexes alphas_cumprod (PNDM, DDIM): InputError naming the step
  // count and steps_offset otherwise (SD's steps_offset 1 with 1000 leading steps gives 1000).
  void check_grid() const;
  double alpha_bar(int64_t t) const;  // alphas_cumprod_[t], Error when t is outside it
  std::string name_;
  int64_t train_steps_;
  int64_t steps_offset_;
  bool set_alpha_to_one_;
  std::string spacing_;                 // leading | linspace | trailing
  std::vector<float> alphas_cumprod_;   // float32, exactly as diffusers computes it
  std::vector<double> timesteps_;
  int64_t num_inference_steps_ = 0;
};

// name: pndm | ddim | dpmpp2m | euler. `config` is the model's scheduler_config.json; as
// diffusers' from_config does, the keys the file states carry over (e.g. timestep_spacing "leading"
// gives DPM++ leading grids too), and the keys it lacks or lists in `_use_default_values` take the
// chosen scheduler's own defaults (timestep_spacing: linspace for Euler/DPM++; DDIM: clip_sample
// and set_alpha_to_one true).
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config);

}  // namespace synth
