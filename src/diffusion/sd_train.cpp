#include "diffusion/sd_train.hpp"

#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "diffusion/model_config.hpp"
#include "diffusion/scheduler.hpp"
#include "diffusion/unet.hpp"
#include "diffusion/vae.hpp"
#include "diffusion/weights.hpp"
#include "run/progress.hpp"
#include "text/clip_text_encoder.hpp"
#include "text/tokenizer.hpp"

namespace synth {

namespace {

using Clock = std::chrono::steady_clock;

// Sub-keys of CounterRng(seed, step, kSdTrain, sub): one stream per kind of draw.
enum Draw : uint32_t { kVaeBatch = 1, kVaeEps = 2, kUnetBatch = 3, kLatentEps = 4, kTimestep = 5, kNoiseEps = 6, kEmpty = 7 };

std::vector<int64_t> draw_rows(uint64_t seed, int64_t step, Draw what, int64_t batch, int64_t n) {
  CounterRng rng(seed, uint64_t(step), RngPurpose::kSdTrain, what);
  std::vector<int64_t> rows(static_cast<size_t>(batch));
  for (auto& r : rows) r = int64_t(rng.below(uint64_t(n)));
  return rows;
}

torch::Tensor draw_normal(uint64_t seed, int64_t step, Draw what, at::IntArrayRef shape) {
  CounterRng rng(seed, uint64_t(step), RngPurpose::kSdTrain, what);
  auto t = torch::empty(shape, torch::kFloat32);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.normal();
  return t;
}

// uint8 NHWC rows -> float NCHW in [-1, 1].
torch::Tensor to_model_input(const torch::Tensor& images_u8, const std::vector<int64_t>& rows) {
  auto idx = torch::tensor(rows, torch::kInt64);
  return images_u8.index_select(0, idx).permute({0, 3, 1, 2}).to(torch::kFloat32).div(127.5).sub(1.0).contiguous();
}

// Mean of the last `n` values (or all, if fewer).
double tail_mean(const std::vector<double>& v, size_t n) {
  if (v.empty()) return 0;
  const size_t k = std::min(n, v.size());
  double s = 0;
  for (size_t i = v.size() - k; i < v.size(); ++i) s += v[i];
  return s / double(k);
}

double head_mean(const std::vector<double>& v, size_t n) {
  const size_t k = std::min(n, v.size());
  double s = 0;
  for (size_t i = 0; i < k; ++i) s += v[i];
  return k ? s / double(k) : 0;
}

std::string progress_line(const std::string& what, int64_t step, int64_t steps, int64_t batch, double loss,
                          double seconds) {
  const double rate = seconds > 0 ? double(step * batch) / seconds : 0;
  const double eta = rate > 0 ? double((steps - step) * batch) / rate : -1;
  std::ostringstream s;
  s << what << " step " << step << "/" << steps << ", loss " << std::setprecision(4) << loss << ", "
    << format_rate(rate) << ", ETA " << format_duration(eta);
  return s.str();
}

void save_component(torch::nn::Module& m, const std::string& path, bool fp16) {
  auto tensors = module_state_dict(m);
  for (auto& [name, t] : tensors) t = fp16 ? t.detach().to(torch::kFloat16) : t.detach();
  save_safetensors(path, tensors, {{"format", "pt"}});
}

// Exponential moving average of a module's parameters (Polyak averaging; the "EMA weights" every
// diffusion model is sampled with). Decay warms up as min(decay, (1 + s) / (10 + s)).
class Ema {
 public:
  Ema(torch::nn::Module& m, double decay) : decay_(decay) {
    torch::NoGradGuard no_grad;
    for (const auto& p : m.parameters()) {
      live_.push_back(p);
      shadow_.push_back(p.detach().clone());
    }
  }
  void update(int64_t step) {
    torch::NoGradGuard no_grad;
    const double d = std::min(decay_, (1.0 + double(step)) / (10.0 + double(step)));
    for (size_t i = 0; i < live_.size(); ++i) shadow_[i].mul_(d).add_(live_[i].detach(), 1.0 - d);
  }
  // Puts the averaged weights into the module (at the end of training).
  void copy_to_live() {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < live_.size(); ++i) live_[i].copy_(shadow_[i]);
  }

 private:
  double decay_;
  std::vector<torch::Tensor> live_, shadow_;
};

class JsonLog {
 public:
  explicit JsonLog(const std::string& path) : out_(path, std::ios::trunc) {
    if (!out_) throw InputError(path + ": cannot write the training log");
  }
  void write(const nlohmann::json& j) { out_ << j.dump() << "\n"; }

 private:
  std::ofstream out_;
};

struct VaeOutcome {
  torch::Tensor mean, std;  // posterior of every training image (unscaled latents)
  double scaling_factor = 0, l1 = 0, kl = 0;
};

// Stage 1: the autoencoder. Returns every image's posterior for stage 2 (the U-Net trains on
// latents sampled from them, so the encoder runs once per image, not once per step).
VaeOutcome train_vae(const SdTrainOptions& o, const SdTrainData& data, JsonLog& jlog,
                     const std::function<void(const std::string&)>& log) {
  const std::string dir = o.model_dir + "/vae";
  AutoencoderKL vae(load_vae_config(dir + "/config.json"));
  torch::optim::Adam opt(vae.module().parameters(), torch::optim::AdamOptions(o.vae_lr));
  const int64_t n = data.images.size(0);
  std::vector<double> l1s, kls;
  const auto start = Clock::now();
  double last_print = 0;
  for (int64_t step = 1; step <= o.vae_steps; ++step) {
    const auto x = to_model_input(data.images, draw_rows(o.seed, step, kVaeBatch, o.vae_batch, n));
    const auto post = vae.encode(x);
    const auto z = post.mean + (0.5 * post.logvar).exp() * draw_normal(o.seed, step, kVaeEps, post.mean.sizes());
    const auto l1 = (vae.decode(z) - x).abs().mean();
    const auto kl = post.kl().mean();
    const auto loss = l1 + o.kl_weight * kl;
    opt.zero_grad();
    loss.backward();
    opt.step();
    l1s.push_back(l1.item<double>());
    kls.push_back(kl.item<double>());
    jlog.write({{"stage", "vae"}, {"step", step}, {"l1", l1s.back()}, {"kl", kls.back()}});
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    if (t - last_print >= o.progress_seconds || step == o.vae_steps) {
      last_print = t;
      log(progress_line("vae", step, o.vae_steps, o.vae_batch, tail_mean(l1s, 50), t) + " (L1; KL " +
          std::to_string(int(tail_mean(kls, 50))) + ")");
    }
  }
  save_component(vae.module(), dir + "/diffusion_pytorch_model.safetensors", o.fp16_weights);

  VaeOutcome out;
  out.l1 = tail_mean(l1s, 100);
  out.kl = tail_mean(kls, 100);
  torch::NoGradGuard no_grad;
  log("vae: encoding the " + std::to_string(n) + " training images (the U-Net trains on samples of their posteriors)");
  std::vector<torch::Tensor> means, stds;
  for (int64_t b = 0; b < n; b += 500) {
    std::vector<int64_t> rows;
    for (int64_t i = b; i < std::min(n, b + 500); ++i) rows.push_back(i);
    const auto post = vae.encode(to_model_input(data.images, rows));
    means.push_back(post.mean);
    stds.push_back((0.5 * post.logvar).exp());
  }
  out.mean = torch::cat(means);
  out.std = torch::cat(stds);
  // Rombach et al. App. D.1: scale the latents to unit variance (SD v1's 0.18215 was found the same way).
  out.scaling_factor = 1.0 / out.mean.std().item<double>();
  return out;
}

void write_scaling_factor(const std::string& config_path, double factor) {
  std::ifstream in(config_path);
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw InputError(config_path + ": not valid JSON");
  j["scaling_factor"] = factor;
  const std::string tmp = config_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) throw InputError(tmp + ": cannot write");
  }
  if (std::rename(tmp.c_str(), config_path.c_str()) != 0) throw InputError(config_path + ": cannot replace");
}

// The prompts of one U-Net batch: the stream's prompt for each image's class, "" with probability
// empty_prompt_p. Tokenized to [B, 77].
torch::Tensor batch_tokens(const SdTrainOptions& o, int64_t step, const std::vector<int64_t>& rows,
                           const SdTrainData& data, const PromptStream& prompts, const ClipTokenizer& tok) {
  CounterRng coin(o.seed, uint64_t(step), RngPurpose::kSdTrain, kEmpty);
  std::vector<std::string> texts;
  for (size_t k = 0; k < rows.size(); ++k) {
    const uint64_t example = uint64_t(step - 1) * rows.size() + k;  // training example counter
    const bool empty = coin.bernoulli(o.empty_prompt_p);
    texts.push_back(empty ? std::string() : prompts.for_class(example, data.labels[size_t(rows[k])]).prompt);
  }
  return torch::tensor(tok.encode_batch(texts), torch::kInt64).view({int64_t(rows.size()), -1});
}

struct UnetOutcome {
  double first = 0, last = 0;
};

// Stage 2: text encoder + U-Net on the latents of stage 1.
UnetOutcome train_unet(const SdTrainOptions& o, const SdTrainData& data, const VaeOutcome& latents,
                       const PromptStream& prompts, JsonLog& jlog, const std::function<void(const std::string&)>& log) {
  const SdModelDir model = load_model_dir(o.model_dir);
  const ClipTokenizer tok(model.tokenizer_dir());
  ClipTextEncoder text(model.text_encoder);
  UNet unet(model.unet);
  const auto abar = make_scheduler("ddim", model.scheduler)->alphas_cumprod();
  const auto abar_t = torch::tensor(std::vector<float>(abar.begin(), abar.end()));
  std::vector<torch::Tensor> params = unet->parameters();
  for (const auto& p : text.module().parameters()) params.push_back(p);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.unet_lr).weight_decay(0.01));
  Ema ema_unet(*unet, o.ema_decay), ema_text(text.module(), o.ema_decay);
  unet->train();
  const int64_t n = data.images.size(0), T = int64_t(abar.size());
  std::vector<double> losses;
  const auto start = Clock::now();
  double last_print = 0;
  for (int64_t step = 1; step <= o.unet_steps; ++step) {
    const auto rows = draw_rows(o.seed, step, kUnetBatch, o.unet_batch, n);
    const auto idx = torch::tensor(rows, torch::kInt64);
    const auto mean = latents.mean.index_select(0, idx), sd = latents.std.index_select(0, idx);
    const auto z0 = (mean + sd * draw_normal(o.seed, step, kLatentEps, mean.sizes())) * latents.scaling_factor;
    const auto t = torch::tensor(draw_rows(o.seed, step, kTimestep, o.unet_batch, T), torch::kInt64);
    const auto eps = draw_normal(o.seed, step, kNoiseEps, z0.sizes());
    const auto a = abar_t.index_select(0, t).view({-1, 1, 1, 1});
    const auto zt = a.sqrt() * z0 + (1 - a).sqrt() * eps;
    const auto states = text.forward_train(batch_tokens(o, step, rows, data, prompts, tok));
    const auto loss = (unet->forward(zt, t, states) - eps).pow(2).mean();
    for (auto& g : opt.param_groups())
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(o.unet_lr * std::min(1.0, double(step) / o.warmup_steps));
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, o.grad_clip);
    opt.step();
    ema_unet.update(step);
    ema_text.update(step);
    losses.push_back(loss.item<double>());
    jlog.write({{"stage", "unet"}, {"step", step}, {"loss", losses.back()}});
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (secs - last_print >= o.progress_seconds || step == o.unet_steps) {
      last_print = secs;
      log(progress_line("unet", step, o.unet_steps, o.unet_batch, tail_mean(losses, 50), secs) + " (eps MSE)");
    }
  }
  ema_unet.copy_to_live();
  ema_text.copy_to_live();
  save_component(*unet, model.component_dir("unet") + "/diffusion_pytorch_model.safetensors", o.fp16_weights);
  save_component(text.module(), model.component_dir("text_encoder") + "/model.safetensors", o.fp16_weights);
  return {head_mean(losses, 100), tail_mean(losses, 100)};
}

}  // namespace

torch::Tensor pad_gray_to_rgb(const torch::Tensor& gray, int64_t size) {
  if (gray.dim() != 3 || gray.scalar_type() != torch::kUInt8)
    throw InputError("pad_gray_to_rgb: images must be uint8 [N, h, w]");
  const int64_t h = gray.size(1), w = gray.size(2);
  if (h > size || w > size) throw InputError("pad_gray_to_rgb: images larger than " + std::to_string(size));
  const int64_t top = (size - h) / 2, left = (size - w) / 2;
  auto canvas = torch::zeros({gray.size(0), size, size}, torch::kUInt8);
  canvas.slice(1, top, top + h).slice(2, left, left + w).copy_(gray);
  return canvas.unsqueeze(-1).expand({-1, -1, -1, 3}).contiguous();
}

SdTrainResult train_sd(const SdTrainOptions& o, const SdTrainData& data, const PromptStream& prompts,
                       const std::function<void(const std::string&)>& log) {
  if (data.images.dim() != 4 || data.images.size(3) != 3 || data.images.scalar_type() != torch::kUInt8)
    throw InputError("train_sd: images must be uint8 [N, H, W, 3]");
  if (int64_t(data.labels.size()) != data.images.size(0)) throw InputError("train_sd: one label per image");
  if (o.vae_steps < 1 || o.unet_steps < 1 || o.vae_batch < 1 || o.unet_batch < 1)
    throw InputError("train_sd: steps and batch sizes must be >= 1");
  const auto start = Clock::now();
  JsonLog jlog(o.model_dir + "/train_log.jsonl");
  torch::manual_seed(o.seed);
  const VaeOutcome vae = train_vae(o, data, jlog, log);
  write_scaling_factor(o.model_dir + "/vae/config.json", vae.scaling_factor);
  log("vae: scaling_factor " + std::to_string(vae.scaling_factor));
  torch::manual_seed(o.seed + 1);
  const UnetOutcome unet = train_unet(o, data, vae, prompts, jlog, log);
  SdTrainResult r;
  r.vae_l1 = vae.l1;
  r.vae_kl = vae.kl;
  r.scaling_factor = vae.scaling_factor;
  r.unet_loss_first = unet.first;
  r.unet_loss_last = unet.last;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

}  // namespace synth
