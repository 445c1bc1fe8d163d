#include "diffusion/model_config.hpp"

#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace synth {

namespace {

using nlohmann::json;

// diffusers and transformers write configs with Python's json.dumps, which spells non-finite
// floats as the bare tokens NaN, Infinity and -Infinity (a DPMSolverMultistepScheduler config has
// "lambda_min_clipped": -Infinity). Strict JSON has no such tokens: they are turned into the
// strings "NaN", "Infinity", "-Infinity" (outside string literals only), so a key synthstream
// never reads loads as before and one it reads fails with its type error naming the key.
std::string quote_python_nonfinite(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::char_traits<char>::length(token);
      if (text.compare(i, n, token) == 0) {
        out += '"' + std::string(token) + '"';
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

// One parsed config.json; every accessor names the file and the key in its errors.
class ConfigFile {
 public:
  explicit ConfigFile(std::string path) : path_(std::move(path)) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) throw InputError(with_errno(path_ + ": cannot open config file"));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      j_ = json::parse(ss.str());
    } catch (const json::exception& e) {
      // Python's NaN/Infinity (see quote_python_nonfinite); anything else keeps the first error.
      j_ = json::parse(quote_python_nonfinite(ss.str()), nullptr, /*allow_exceptions=*/false);
      if (j_.is_discarded()) throw InputError(path_ + ": not valid JSON: " + e.what());
    }
    if (!j_.is_object()) throw InputError(path_ + ": top level is not a JSON object");
  }
  const json& root() const { return j_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  template <class T>
  T req(const std::string& key) const {
    if (!has(key)) throw InputError(path_ + ": missing key '" + key + "'");
    return as<T>(j_.at(key), key);
  }
  template <class T>
  T opt(const std::string& key, T fallback) const {
    return has(key) ? as<T>(j_.at(key), key) : fallback;
  }
  template <class T>
  std::optional<T> maybe(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return as<T>(j_.at(key), key);
  }
  // diffusers accepts a scalar or one value per block for several keys.
  std::vector<int64_t> per_block(const std::string& key, size_t blocks, std::optional<int64_t> fallback) const {
    if (!has(key)) {
      if (!fallback) throw InputError(path_ + ": missing key '" + key + "'");
      return std::vector<int64_t>(blocks, *fallback);
    }
    const json& v = j_.at(key);
    if (v.is_array()) {
      auto list = as<std::vector<int64_t>>(v, key);
      if (list.size() != blocks)
        throw InputError(path_ + ": key '" + key + "' has " + std::to_string(list.size()) + " entries but there are " +
                         std::to_string(blocks) + " blocks");
      return list;
    }
    return std::vector<int64_t>(blocks, as<int64_t>(v, key));
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(path_ + ": key '" + key + "' " + what);
  }

 private:
  template <class T>
  T as(const json& v, const std::string& key) const {
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) fail(key, "must be a boolean, got " + v.dump());
      return v.get<bool>();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      if (!v.is_number_integer()) fail(key, "must be an integer, got " + v.dump());
      return v.get<int64_t>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!v.is_number()) fail(key, "must be a number, got " + v.dump());
      return v.get<double>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) fail(key, "must be a string, got " + v.dump());
      return v.get<std::string>();
    } else {
      using E = typename T::value_type;
      if (!v.is_array()) fail(key, "must be a list, got " + v.dump());
      T out;
      for (const auto& e : v) out.push_back(as<E>(e, key));
      return out;
    }
  }
  std::string path_;
  json j_;
};

void require_positive(const ConfigFile& c, const std::string& key, int64_t v) {
  if (v <= 0) c.fail(key, "must be positive, got " + std::to_string(v));
}

void require_channels(const ConfigFile& c, const std::string& key, const std::vector<int64_t>& channels,
                      int64_t groups) {
  if (channels.empty()) c.fail(key, "must not be empty");
  for (int64_t ch : channels) {
    require_positive(c, key, ch);
    if (ch % groups != 0)
      c.fail(key, "entry " + std::to_string(ch) + " is not divisible by norm_num_groups " + std::to_string(groups));
  }
}

// UNet2DConditionModel options SD v1 does not use. Each is refused by name when set, so that a
// checkpoint using one never runs with silently wrong numbers: the reference suite found the
// time-embedding activations accepted and ignored (tests/reference/test_sd_sweep.py).
void refuse_non_sd_v1_unet_keys(const ConfigFile& c, const UNetConfig& u) {
  for (const char* key : {"time_embedding_act_fn", "timestep_post_act", "time_embedding_dim", "encoder_hid_dim",
                          "encoder_hid_dim_type", "num_class_embeds", "class_embed_type", "addition_embed_type",
                          "time_cond_proj_dim", "projection_class_embeddings_input_dim", "addition_time_embed_dim"})
    if (c.has(key)) c.fail(key, "is not supported by the SD v1 U-Net (only null)");
  if (u.only_cross_attention) c.fail("only_cross_attention", "true is not supported (SD v1 blocks self-attend first)");
  if (u.dual_cross_attention) c.fail("dual_cross_attention", "true is not supported by the SD v1 U-Net");
}

}  // namespace

int64_t UNetConfig::heads(size_t block) const {
  const auto& v = num_attention_heads ? *num_attention_heads : attention_head_dim;
  return v.at(block);
}

UNetConfig load_unet_config(const std::string& path) {
  ConfigFile c(path);
  UNetConfig u;
  u.in_channels = c.req<int64_t>("in_channels");
  u.out_channels = c.req<int64_t>("out_channels");
  u.block_out_channels = c.req<std::vector<int64_t>>("block_out_channels");
  u.layers_per_block = c.req<int64_t>("layers_per_block");
  u.cross_attention_dim = c.req<int64_t>("cross_attention_dim");
  u.down_block_types = c.req<std::vector<std::string>>("down_block_types");
  u.up_block_types = c.req<std::vector<std::string>>("up_block_types");
  u.norm_num_groups = c.opt<int64_t>("norm_num_groups", u.norm_num_groups);
  u.norm_eps = c.opt<double>("norm_eps", u.norm_eps);
  u.mid_block_type = c.opt<std::string>("mid_block_type", u.mid_block_type);
  u.flip_sin_to_cos = c.opt<bool>("flip_sin_to_cos", u.flip_sin_to_cos);
  u.freq_shift = c.opt<double>("freq_shift", u.freq_shift);
  u.sample_size = c.maybe<int64_t>("sample_size");
  u.center_input_sample = c.opt<bool>("center_input_sample", u.center_input_sample);
  u.act_fn = c.opt<std::string>("act_fn", u.act_fn);
  u.use_linear_projection = c.opt<bool>("use_linear_projection", u.use_linear_projection);
  u.upcast_attention = c.opt<bool>("upcast_attention", u.upcast_attention);
  if (c.has("only_cross_attention") && !c.root().at("only_cross_attention").is_boolean())
    c.fail("only_cross_attention", "must be a boolean (per-block lists are not supported)");
  u.only_cross_attention = c.opt<bool>("only_cross_attention", u.only_cross_attention);
  u.dual_cross_attention = c.opt<bool>("dual_cross_attention", u.dual_cross_attention);
  u.downsample_padding = c.opt<int64_t>("downsample_padding", u.downsample_padding);
  u.mid_block_scale_factor = c.opt<double>("mid_block_scale_factor", u.mid_block_scale_factor);
  u.conv_in_kernel = c.opt<int64_t>("conv_in_kernel", u.conv_in_kernel);
  u.conv_out_kernel = c.opt<int64_t>("conv_out_kernel", u.conv_out_kernel);
  u.time_embedding_type = c.opt<std::string>("time_embedding_type", u.time_embedding_type);
  u.resnet_time_scale_shift = c.opt<std::string>("resnet_time_scale_shift", u.resnet_time_scale_shift);
  u.class_embed_type = c.maybe<std::string>("class_embed_type");
  u.addition_embed_type = c.maybe<std::string>("addition_embed_type");
  u.time_cond_proj_dim = c.maybe<int64_t>("time_cond_proj_dim");
  refuse_non_sd_v1_unet_keys(c, u);

  require_positive(c, "in_channels", u.in_channels);
  require_positive(c, "out_channels", u.out_channels);
  require_positive(c, "layers_per_block", u.layers_per_block);
  require_positive(c, "cross_attention_dim", u.cross_attention_dim);
  require_positive(c, "norm_num_groups", u.norm_num_groups);
  require_channels(c, "block_out_channels", u.block_out_channels, u.norm_num_groups);
  const size_t blocks = u.block_out_channels.size();
  if (u.down_block_types.size() != blocks)
    c.fail("down_block_types", "has " + std::to_string(u.down_block_types.size()) + " entries but block_out_channels has " +
                                   std::to_string(blocks));
  if (u.up_block_types.size() != blocks)
    c.fail("up_block_types", "has " + std::to_string(u.up_block_types.size()) + " entries but block_out_channels has " +
                                 std::to_string(blocks));
  u.attention_head_dim = c.per_block("attention_head_dim", blocks, std::nullopt);
  if (c.has("num_attention_heads")) u.num_attention_heads = c.per_block("num_attention_heads", blocks, std::nullopt);
  u.transformer_layers_per_block = c.per_block("transformer_layers_per_block", blocks, 1);
  for (size_t i = 0; i < blocks; ++i) {
    const int64_t h = u.heads(i);
    if (h <= 0 || u.block_out_channels[i] % h != 0)
      c.fail(u.num_attention_heads ? "num_attention_heads" : "attention_head_dim",
             "entry " + std::to_string(h) + " does not divide block channels " + std::to_string(u.block_out_channels[i]));
  }
  if (u.norm_eps <= 0) c.fail("norm_eps", "must be positive");
  return u;
}

VaeConfig load_vae_config(const std::string& path) {
  ConfigFile c(path);
  VaeConfig v;
  v.in_channels = c.req<int64_t>("in_channels");
  v.out_channels = c.req<int64_t>("out_channels");
  v.latent_channels = c.req<int64_t>("latent_channels");
  v.block_out_channels = c.req<std::vector<int64_t>>("block_out_channels");
  v.layers_per_block = c.req<int64_t>("layers_per_block");
  v.up_block_types = c.req<std::vector<std::string>>("up_block_types");
  v.down_block_types = c.opt<std::vector<std::string>>("down_block_types", {});
  v.norm_num_groups = c.opt<int64_t>("norm_num_groups", v.norm_num_groups);
  v.act_fn = c.opt<std::string>("act_fn", v.act_fn);
  v.scaling_factor = c.opt<double>("scaling_factor", v.scaling_factor);
  // SD v1 decodes latents / scaling_factor (diffusers' StableDiffusionPipeline never reads
  // shift_factor); a VAE that needs a shift (SD3/Flux latents) would decode wrongly here.
  if (c.has("shift_factor")) c.fail("shift_factor", "is not supported: SD v1 latents have no shift (only null)");
  v.mid_block_add_attention = c.opt<bool>("mid_block_add_attention", v.mid_block_add_attention);
  v.force_upcast = c.opt<bool>("force_upcast", v.force_upcast);
  v.use_post_quant_conv = c.opt<bool>("use_post_quant_conv", v.use_post_quant_conv);
  v.use_quant_conv = c.opt<bool>("use_quant_conv", v.use_quant_conv);
  v.sample_size = c.maybe<int64_t>("sample_size");

  require_positive(c, "in_channels", v.in_channels);
  require_positive(c, "out_channels", v.out_channels);
  require_positive(c, "latent_channels", v.latent_channels);
  require_positive(c, "layers_per_block", v.layers_per_block);
  require_positive(c, "norm_num_groups", v.norm_num_groups);
  require_channels(c, "block_out_channels", v.block_out_channels, v.norm_num_groups);
  if (v.up_block_types.size() != v.block_out_channels.size())
    c.fail("up_block_types", "has " + std::to_string(v.up_block_types.size()) + " entries but block_out_channels has " +
                                 std::to_string(v.block_out_channels.size()));
  for (const auto& t : v.up_block_types)
    if (t != "UpDecoderBlock2D") c.fail("up_block_types", "entry '" + t + "' is not supported (only UpDecoderBlock2D)");
  if (v.act_fn != "silu") c.fail("act_fn", "'" + v.act_fn + "' is not supported (only silu)");
  if (!(v.scaling_factor > 0)) c.fail("scaling_factor", "must be positive");
  return v;
}

SchedulerConfig load_scheduler_config(const std::string& path) {
  ConfigFile c(path);
  SchedulerConfig s;
  s.class_name = c.req<std::string>("_class_name");
  const bool ddim = s.class_name == "DDIMScheduler";
  const bool linspace_default = s.class_name == "DPMSolverMultistepScheduler" || s.class_name == "EulerDiscreteScheduler";
  s.num_train_timesteps = c.opt<int64_t>("num_train_timesteps", s.num_train_timesteps);
  s.beta_start = c.opt<double>("beta_start", s.beta_start);
  s.beta_end = c.opt<double>("beta_end", s.beta_end);
  s.beta_schedule = c.opt<std::string>("beta_schedule", s.beta_schedule);
  s.trained_betas = c.opt<std::vector<double>>("trained_betas", {});
  s.prediction_type = c.opt<std::string>("prediction_type", s.prediction_type);
  s.set_alpha_to_one = c.opt<bool>("set_alpha_to_one", ddim);
  s.skip_prk_steps = c.opt<bool>("skip_prk_steps", s.skip_prk_steps);
  s.steps_offset = c.opt<int64_t>("steps_offset", s.steps_offset);
  s.timestep_spacing = c.opt<std::string>("timestep_spacing", linspace_default ? "linspace" : "leading");
  s.clip_sample = c.opt<bool>("clip_sample", ddim);
  s.clip_sample_range = c.opt<double>("clip_sample_range", s.clip_sample_range);
  s.thresholding = c.opt<bool>("thresholding", s.thresholding);
  s.dynamic_thresholding_ratio = c.opt<double>("dynamic_thresholding_ratio", s.dynamic_thresholding_ratio);
  s.sample_max_value = c.opt<double>("sample_max_value", s.sample_max_value);
  s.rescale_betas_zero_snr = c.opt<bool>("rescale_betas_zero_snr", s.rescale_betas_zero_snr);
  s.solver_order = c.opt<int64_t>("solver_order", s.solver_order);
  s.algorithm_type = c.opt<std::string>("algorithm_type", s.algorithm_type);
  s.solver_type = c.opt<std::string>("solver_type", s.solver_type);
  s.lower_order_final = c.opt<bool>("lower_order_final", s.lower_order_final);
  s.euler_at_final = c.opt<bool>("euler_at_final", s.euler_at_final);
  s.use_karras_sigmas = c.opt<bool>("use_karras_sigmas", s.use_karras_sigmas);
  s.final_sigmas_type = c.opt<std::string>("final_sigmas_type", s.final_sigmas_type);
  s.interpolation_type = c.opt<std::string>("interpolation_type", s.interpolation_type);
  s.timestep_type = c.opt<std::string>("timestep_type", s.timestep_type);
  s.sigma_min = c.maybe<double>("sigma_min");
  s.sigma_max = c.maybe<double>("sigma_max");
  for (auto it = c.root().begin(); it != c.root().end(); ++it)
    if (!it.value().is_null()) s.present.insert(it.key());
  s.raw = c.root();

  require_positive(c, "num_train_timesteps", s.num_train_timesteps);
  if (s.num_train_timesteps > 100000) c.fail("num_train_timesteps", "is absurdly large");
  if (!s.trained_betas.empty() && int64_t(s.trained_betas.size()) != s.num_train_timesteps)
    c.fail("trained_betas", "has " + std::to_string(s.trained_betas.size()) + " entries, expected num_train_timesteps");
  if (s.beta_schedule != "linear" && s.beta_schedule != "scaled_linear" && s.beta_schedule != "squaredcos_cap_v2")
    c.fail("beta_schedule", "'" + s.beta_schedule + "' is not supported");
  if (s.timestep_spacing != "leading" && s.timestep_spacing != "linspace" && s.timestep_spacing != "trailing")
    c.fail("timestep_spacing", "'" + s.timestep_spacing + "' is not supported");
  if (s.steps_offset < 0) c.fail("steps_offset", "must not be negative");
  return s;
}

SdModelDir load_model_dir(const std::string& dir) {
  SdModelDir m;
  m.dir = dir;
  ConfigFile index(dir + "/model_index.json");
  m.model_index = index.root();
  // Each component entry is [library, class]; only the classes we implement are accepted.
  auto expect_class = [&](const std::string& key, const std::string& cls) {
    if (!index.has(key)) throw InputError(index.path() + ": missing key '" + key + "'");
    const json& v = index.root().at(key);
    if (!v.is_array() || v.size() != 2 || !v[1].is_string())
      index.fail(key, "must be a [library, class] pair, got " + v.dump());
    if (!cls.empty() && v[1].get<std::string>() != cls)
      index.fail(key, "is '" + v[1].get<std::string>() + "' but synthstream implements only " + cls);
  };
  expect_class("text_encoder", "CLIPTextModel");
  expect_class("unet", "UNet2DConditionModel");
  expect_class("vae", "AutoencoderKL");
  expect_class("scheduler", "");
  m.text_encoder = load_text_encoder_config(dir + "/text_encoder/config.json");
  m.unet = load_unet_config(dir + "/unet/config.json");
  m.vae = load_vae_config(dir + "/vae/config.json");
  m.scheduler = load_scheduler_config(dir + "/scheduler/scheduler_config.json");
  if (m.unet.cross_attention_dim != m.text_encoder.hidden_size)
    throw InputError(dir + "/unet/config.json: key 'cross_attention_dim' is " + std::to_string(m.unet.cross_attention_dim) +
                     " but the text encoder's hidden_size is " + std::to_string(m.text_encoder.hidden_size));
  if (m.unet.in_channels != m.vae.latent_channels)
    throw InputError(dir + "/unet/config.json: key 'in_channels' is " + std::to_string(m.unet.in_channels) +
                     " but the VAE's latent_channels is " + std::to_string(m.vae.latent_channels));
  return m;
}

}  // namespace synth
