// Schedulers matching diffusers; each formula cites the paper it comes from. All scalar
// coefficients are computed in double from diffusers' float32 alphas_cumprod / sigmas.
#include "diffusion/scheduler.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace synth {
namespace {

bool uses_default(const SchedulerConfig& c, const std::string& key) {
  if (!c.present.count(key)) return true;
  if (c.raw.is_object() && c.raw.contains("_use_default_values") && c.raw["_use_default_values"].is_array())
    for (const auto& k : c.raw["_use_default_values"])
      if (k.is_string() && k.get<std::string>() == key) return true;
  return false;
}

// diffusers' from_config, key by key: a value the file states (and does not list in
// _use_default_values) carries into whichever scheduler class reads it; a key the file lacks takes
// that class's own default. So SD v1.4's PNDM file (no timestep_spacing) gives DPM++/Euler their
// linspace grids, while a file that states "leading" gives every scheduler leading grids.
template <class T>
T from_config(const SchedulerConfig& c, const std::string& key, const T& file_value, const T& class_default) {
  return uses_default(c, key) ? class_default : file_value;
}

// betas -> alphas_cumprod in float32 through LibTorch, so the values are bit-identical to diffusers'.
std::vector<float> alphas_cumprod_of(const SchedulerConfig& c, const std::string& who) {
  const int64_t T = c.num_train_timesteps;
  torch::Tensor betas;
  if (!c.trained_betas.empty()) {
    if (int64_t(c.trained_betas.size()) != T)
      throw InputError(who + ": trained_betas has " + std::to_string(c.trained_betas.size()) + " entries, expected " +
                       std::to_string(T));
    betas = torch::tensor(c.trained_betas, torch::kFloat64).to(torch::kFloat32);
  } else if (c.beta_schedule == "linear") {
    betas = torch::linspace(c.beta_start, c.beta_end, T, torch::kFloat32);
  } else if (c.beta_schedule == "scaled_linear") {
    // Latent diffusion's schedule: linear in sqrt(beta) (Rombach et al. 2022).
    betas = torch::linspace(std::sqrt(c.beta_start), std::sqrt(c.beta_end), T, torch::kFloat32).pow(2);
  } else if (c.beta_schedule == "squaredcos_cap_v2") {
    // Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = cos^2((t + 0.008) / 1.008 * pi / 2), beta capped at 0.999.
    std::vector<double> b(T);
    const auto abar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
    for (int64_t i = 0; i < T; ++i) b[i] = std::min(1 - abar(double(i + 1) / T) / abar(double(i) / T), 0.999);
    betas = torch::tensor(b, torch::kFloat64).to(torch::kFloat32);
  } else {
    throw InputError(who + ": beta_schedule '" + c.beta_schedule + "' is not supported");
  }
  const torch::Tensor ac = torch::cumprod(1.0 - betas, 0).contiguous();
  return std::vector<float>(ac.data_ptr<float>(), ac.data_ptr<float>() + T);
}

// numpy's round (half to even), which diffusers' timestep grids use.
double round_half_even(double x) { return std::nearbyint(x); }

std::vector<double> linspace(double a, double b, int64_t n) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = n == 1 ? a : a + (b - a) * double(i) / double(n - 1);
  if (n > 1) v[n - 1] = b;
  return v;
}

// np.interp over the integer grid 0..len-1.
double interp(const std::vector<float>& ys, double x) {
  if (x <= 0) return ys.front();
  if (x >= double(ys.size() - 1)) return ys.back();
  const auto i = int64_t(std::floor(x));
  const double f = x - double(i);
  return double(ys[i]) + f * (double(ys[i + 1]) - double(ys[i]));
}

std::vector<float> karras_free_sigmas(const std::vector<float>& ac) {
  std::vector<float> s(ac.size());
  for (size_t i = 0; i < ac.size(); ++i) s[i] = std::sqrt((1.0f - ac[i]) / ac[i]);  // float32, as numpy does it
  return s;
}

// ---------------------------------------------------------------------------------------------
// PNDM, PLMS part only (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models", eq. 12
// with the linear-multistep coefficients of eq. 13), as diffusers runs it with skip_prk_steps.
class Pndm final : public Scheduler {
 public:
  explicit Pndm(const SchedulerConfig& c) : Scheduler("pndm", c, "leading") {
    if (!c.skip_prk_steps)
      throw InputError("scheduler: PNDM with Runge-Kutta warm-up (skip_prk_steps = false) is not supported; SD v1 uses true");
  }
  void set_timesteps(int64_t n) override {
    check_steps(n);
    num_inference_steps_ = n;
    const int64_t T = train_steps_;
    std::vector<double> ts(n);
    if (spacing_ == "linspace") {
      ts = linspace(0, double(T - 1), n);
      for (auto& t : ts) t = round_half_even(t);
    } else if (spacing_ == "leading") {
      const int64_t ratio = T / n;
      // In double: steps_offset comes from the file unbounded (int64 arithmetic could overflow).
      for (int64_t i = 0; i < n; ++i) ts[i] = double(i * ratio) + double(steps_offset_);
    } else {
      const double ratio = double(T) / double(n);
      for (int64_t i = 0; i < n; ++i) ts[i] = round_half_even(double(T) - double(i) * ratio) - 1;
      std::reverse(ts.begin(), ts.end());
    }
    // PLMS needs one extra model evaluation at the first timestep: diffusers repeats the
    // second-to-last entry of the ascending grid, then walks it backwards.
    std::vector<double> plms(ts.begin(), ts.end() - 1);
    if (n >= 2) plms.push_back(ts[n - 2]);
    plms.push_back(ts[n - 1]);
    std::reverse(plms.begin(), plms.end());
    timesteps_ = plms;
    check_grid();
    ets_.clear();
    counter_ = 0;
    cur_sample_ = torch::Tensor();
  }
  torch::Tensor step(const torch::Tensor& model_output, double timestep, const torch::Tensor& sample_in) override {
    int64_t t = int64_t(timestep);
    int64_t prev = t - train_steps_ / num_inference_steps_;
    torch::Tensor eps = model_output, sample = sample_in;
    if (counter_ != 1) {
      if (ets_.size() > 3) ets_.erase(ets_.begin(), ets_.end() - 3);
      ets_.push_back(model_output);
    } else {
      prev = t;
      t = t + train_steps_ / num_inference_steps_;
    }
    const size_t n = ets_.size();
    if (n == 1 && counter_ == 0) {
      cur_sample_ = sample;
    } else if (n == 1 && counter_ == 1) {
      eps = (model_output + ets_.back()) / 2;
      sample = cur_sample_;
      cur_sample_ = torch::Tensor();
    } else if (n == 2) {
      eps = (3 * ets_[n - 1] - ets_[n - 2]) / 2;
    } else if (n == 3) {
      eps = (23 * ets_[n - 1] - 16 * ets_[n - 2] + 5 * ets_[n - 3]) / 12;
    } else {
      eps = (55 * ets_[n - 1] - 59 * ets_[n - 2] + 37 * ets_[n - 3] - 9 * ets_[n - 4]) / 24;
    }
    ++counter_;
    // Liu et al. eq. 11 (the transfer part phi): x_prev = sqrt(a_prev/a_t) x - (a_prev - a_t) eps /
    // (a_t sqrt(1 - a_prev) + sqrt(a_t (1 - a_t) a_prev)).
    const double a_t = alpha_bar(t);
    const double a_prev = prev >= 0 ? alpha_bar(prev) : (set_alpha_to_one_ ? 1.0 : alphas_cumprod_[0]);
    const double sample_coeff = std::sqrt(a_prev / a_t);
    const double denom = a_t * std::sqrt(1 - a_prev) + std::sqrt(a_t * (1 - a_t) * a_prev);
    return sample_coeff * sample - ((a_prev - a_t) / denom) * eps;
  }

 private:
  std::vector<torch::Tensor> ets_;
  int64_t counter_ = 0;
  torch::Tensor cur_sample_;
};

// ---------------------------------------------------------------------------------------------
// DDIM (Song et al. 2021, eq. 12) with eta = 0: deterministic.
class Ddim final : public Scheduler {
 public:
  // clip_sample defaults to true in DDIMScheduler: x0 is clamped to [-1, 1] unless the file says otherwise.
  explicit Ddim(const SchedulerConfig& c)
      : Scheduler("ddim", c, "leading"), clip_(from_config(c, "clip_sample", c.clip_sample, true)), clip_range_(c.clip_sample_range) {
    if (c.thresholding) throw InputError("scheduler: DDIM dynamic thresholding is not supported");
  }
  void set_timesteps(int64_t n) override {
    check_steps(n);
    num_inference_steps_ = n;
    const int64_t T = train_steps_;
    timesteps_.assign(n, 0);
    if (spacing_ == "linspace") {
      auto ts = linspace(0, double(T - 1), n);
      for (int64_t i = 0; i < n; ++i) timesteps_[i] = round_half_even(ts[n - 1 - i]);
    } else if (spacing_ == "leading") {
      const int64_t ratio = T / n;
      for (int64_t i = 0; i < n; ++i) timesteps_[i] = double((n - 1 - i) * ratio) + double(steps_offset_);
    } else {
      const double ratio = double(T) / double(n);
      for (int64_t i = 0; i < n; ++i) timesteps_[i] = round_half_even(double(T) - double(i) * ratio) - 1;
    }
    check_grid();
  }
  torch::Tensor step(const torch::Tensor& eps, double timestep, const torch::Tensor& sample) override {
    const int64_t t = int64_t(timestep), prev = t - train_steps_ / num_inference_steps_;
    const double a_t = alpha_bar(t);
    const double a_prev = prev >= 0 ? alpha_bar(prev) : (set_alpha_to_one_ ? 1.0 : alphas_cumprod_[0]);
    // x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t); x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps.
    torch::Tensor x0 = (sample - std::sqrt(1 - a_t) * eps) / std::sqrt(a_t);
    if (clip_) x0 = x0.clamp(-clip_range_, clip_range_);
    return std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev) * eps;
  }

 private:
  bool clip_;
  double clip_range_;
};

// Timestep grids shared by the sigma-based schedulers (Euler, DPM-Solver++).
std::vector<double> sigma_timesteps(const std::string& spacing, int64_t T, int64_t n, int64_t offset, bool dpm) {
  std::vector<double> ts(n);
  if (spacing == "linspace") {
    if (dpm) {
      const auto grid = linspace(0, double(T - 1), n + 1);  // then rounded, reversed, last dropped
      for (int64_t i = 0; i < n; ++i) ts[i] = round_half_even(grid[n - i]);
    } else {
      const auto grid = linspace(0, double(T - 1), n);
      for (int64_t i = 0; i < n; ++i) ts[i] = double(float(grid[n - 1 - i]));  // float32 grid
    }
  } else if (spacing == "leading") {
    const int64_t ratio = T / (dpm ? n + 1 : n);
    for (int64_t i = 0; i < n; ++i) ts[i] = double((dpm ? n - i : n - 1 - i) * ratio) + double(offset);
  } else {
    const double ratio = double(T) / double(n);
    for (int64_t i = 0; i < n; ++i) ts[i] = round_half_even(double(T) - double(i) * ratio) - 1;
  }
  return ts;
}

// ---------------------------------------------------------------------------------------------
// Euler (Karras et al. 2022, Algorithm 2 with s_churn = 0): the probability-flow ODE in sigma,
// x_{i+1} = x_i + (x_i - x0(x_i)) / sigma_i * (sigma_{i+1} - sigma_i).
class Euler final : public Scheduler {
 public:
  explicit Euler(const SchedulerConfig& c) : Scheduler("euler", c, "linspace") {
    if (c.interpolation_type != "linear") throw InputError("scheduler: Euler interpolation_type must be linear");
    if (c.use_karras_sigmas) throw InputError("scheduler: Karras sigmas are not supported");
  }
  void set_timesteps(int64_t n) override {
    check_steps(n);
    num_inference_steps_ = n;
    timesteps_ = sigma_timesteps(spacing_, train_steps_, n, steps_offset_, false);
    const auto full = karras_free_sigmas(alphas_cumprod_);
    sigmas_.clear();
    for (double t : timesteps_) sigmas_.push_back(double(float(interp(full, t))));
    sigmas_.push_back(0.0);
    step_index_ = 0;
  }
  double init_noise_sigma() const override {
    const double max_sigma = *std::max_element(sigmas_.begin(), sigmas_.end());
    return (spacing_ == "linspace" || spacing_ == "trailing") ? max_sigma : std::sqrt(max_sigma * max_sigma + 1);
  }
  torch::Tensor scale_model_input(const torch::Tensor& sample, double) override {
    const double s = sigmas_.at(step_index_);
    return sample / std::sqrt(s * s + 1);
  }
  torch::Tensor step(const torch::Tensor& eps, double, const torch::Tensor& sample) override {
    if (step_index_ + 1 >= int64_t(sigmas_.size())) throw Error("scheduler: Euler stepped past its last timestep");
    const double sigma = sigmas_[step_index_], next = sigmas_[step_index_ + 1];
    const torch::Tensor x0 = sample - sigma * eps;
    const torch::Tensor derivative = (sample - x0) / sigma;
    ++step_index_;
    return sample + derivative * (next - sigma);
  }

 private:
  std::vector<double> sigmas_;
  int64_t step_index_ = 0;
};

// ---------------------------------------------------------------------------------------------
// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), data prediction, midpoint
// second-order correction, first-order final step(s) as diffusers' lower_order_final.
class DpmSolverPP2M final : public Scheduler {
 public:
  explicit DpmSolverPP2M(const SchedulerConfig& c)
      : Scheduler("dpmpp2m", c, "linspace"), lower_order_final_(c.lower_order_final), euler_at_final_(c.euler_at_final),
        final_zero_(c.final_sigmas_type == "zero") {
    if (c.solver_order != 2) throw InputError("scheduler: DPM-Solver++ 2M needs solver_order = 2");
    if (c.algorithm_type != "dpmsolver++") throw InputError("scheduler: algorithm_type must be dpmsolver++");
    if (c.solver_type != "midpoint") throw InputError("scheduler: only solver_type = midpoint is supported");
    if (c.use_karras_sigmas) throw InputError("scheduler: Karras sigmas are not supported");
  }
  void set_timesteps(int64_t n) override {
    check_steps(n);
    num_inference_steps_ = n;
    timesteps_ = sigma_timesteps(spacing_, train_steps_, n, steps_offset_, true);
    const auto full = karras_free_sigmas(alphas_cumprod_);
    sigmas_.clear();
    for (double t : timesteps_) sigmas_.push_back(double(float(interp(full, t))));
    sigmas_.push_back(final_zero_ ? 0.0 : double(full.front()));
    step_index_ = 0;
    lower_order_nums_ = 0;
    outputs_.clear();
  }
  torch::Tensor step(const torch::Tensor& eps, double, const torch::Tensor& sample) override {
    const int64_t n = int64_t(timesteps_.size()), i = step_index_;
    if (i >= n) throw Error("scheduler: DPM-Solver++ stepped past its last timestep");
    const bool lower_final = i == n - 1 && (euler_at_final_ || (lower_order_final_ && n < 15) || final_zero_);
    // Data prediction x0 = (x - sigma_t eps) / alpha_t with alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma alpha_t.
    const auto [alpha_s0, sigma_s0] = alpha_sigma(sigmas_[i]);
    const torch::Tensor x0 = (sample - sigma_s0 * eps) / alpha_s0;
    outputs_.push_back(x0);
    if (outputs_.size() > 2) outputs_.erase(outputs_.begin());
    const auto [alpha_t, sigma_t] = alpha_sigma(sigmas_[i + 1]);
    const double lambda_t = std::log(alpha_t) - std::log(sigma_t), lambda_s0 = std::log(alpha_s0) - std::log(sigma_s0);
    const double h = lambda_t - lambda_s0;
    const double phi = std::expm1(-h);  // exp(-h) - 1
    torch::Tensor out;
    if (lower_order_nums_ < 1 || lower_final) {
      out = (sigma_t / sigma_s0) * sample - (alpha_t * phi) * x0;  // DPM-Solver++(1) = DDIM
    } else {
      const auto [alpha_s1, sigma_s1] = alpha_sigma(sigmas_[i - 1]);
      const double lambda_s1 = std::log(alpha_s1) - std::log(sigma_s1);
      const double r0 = (lambda_s0 - lambda_s1) / h;
      const torch::Tensor& m0 = outputs_[1];
      const torch::Tensor& m1 = outputs_[0];
      const torch::Tensor d1 = (1.0 / r0) * (m0 - m1);
      out = (sigma_t / sigma_s0) * sample - (alpha_t * phi) * m0 - (0.5 * alpha_t * phi) * d1;
    }
    if (lower_order_nums_ < 2) ++lower_order_nums_;
    ++step_index_;
    return out;
  }

 private:
  static std::pair<double, double> alpha_sigma(double sigma) {
    const double a = 1.0 / std::sqrt(sigma * sigma + 1);
    return {a, sigma * a};
  }
  bool lower_order_final_, euler_at_final_, final_zero_;
  std::vector<double> sigmas_;
  std::vector<torch::Tensor> outputs_;
  int64_t step_index_ = 0, lower_order_nums_ = 0;
};

}  // namespace

Scheduler::Scheduler(std::string name, const SchedulerConfig& c, const std::string& default_spacing)
    : name_(std::move(name)), train_steps_(c.num_train_timesteps), steps_offset_(c.steps_offset),
      // set_alpha_to_one defaults to true in DDIMScheduler only (PNDM: false; DPM++/Euler lack it).
      set_alpha_to_one_(from_config(c, "set_alpha_to_one", c.set_alpha_to_one, name_ == "ddim")),
      spacing_(from_config(c, "timestep_spacing", c.timestep_spacing, default_spacing)) {
  const std::string who = "scheduler " + name_;
  if (train_steps_ < 2) throw InputError(who + ": num_train_timesteps must be >= 2");
  if (c.prediction_type != "epsilon")
    throw InputError(who + ": prediction_type '" + c.prediction_type + "' is not supported (SD v1 predicts epsilon)");
  if (spacing_ != "leading" && spacing_ != "linspace" && spacing_ != "trailing")
    throw InputError(who + ": timestep_spacing '" + spacing_ + "' must be leading, linspace or trailing");
  alphas_cumprod_ = alphas_cumprod_of(c, who);
}

void Scheduler::check_grid() const {
  for (double t : timesteps_)
    if (!(t >= 0 && t <= double(train_steps_ - 1)))
      throw InputError("scheduler " + name_ + ": " + std::to_string(num_inference_steps_) + " steps give timestep " +
                       std::to_string(int64_t(std::min(t, 9e18))) + ", outside [0, " + std::to_string(train_steps_ - 1) +
                       "] (num_train_timesteps " + std::to_string(train_steps_) + ", steps_offset " +
                       std::to_string(steps_offset_) + "): use fewer steps or a smaller steps_offset");
}

double Scheduler::alpha_bar(int64_t t) const {
  if (t < 0 || t >= int64_t(alphas_cumprod_.size()))
    throw Error("scheduler " + name_ + ": timestep " + std::to_string(t) + " outside [0, " +
                std::to_string(alphas_cumprod_.size()) + ")");
  return alphas_cumprod_[size_t(t)];
}

void Scheduler::check_steps(int64_t n) const {
  if (n < 1 || n > train_steps_)
    throw InputError("scheduler " + name_ + ": steps must be in [1, " + std::to_string(train_steps_) + "], got " +
                     std::to_string(n));
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config) {
  if (name == "pndm") return std::make_unique<Pndm>(config);
  if (name == "ddim") return std::make_unique<Ddim>(config);
  if (name == "dpmpp2m") return std::make_unique<DpmSolverPP2M>(config);
  if (name == "euler") return std::make_unique<Euler>(config);
  throw InputError("unknown scheduler '" + name + "' (pndm, ddim, dpmpp2m, euler)");
}

}  // namespace synth
