// Typed configurations of a Stable-Diffusion v1.x model directory in the diffusers layout
// (model_index.json, text_encoder/, unet/, vae/, scheduler/, tokenizer/). Every architecture size
// comes from these files, never from constants, so the toy model in tests/fixtures/tiny-sd and the real
// SD v1.4/v1.5 weights go through the same code. Missing file or required key, or a value of the
// wrong type -> InputError naming the file and the key. Keys a config may omit take the diffusers
// defaults (the original SD v1.4 configs omit e.g. scaling_factor and mid_block_type).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "text/clip_text_encoder.hpp"

namespace synth {

// diffusers UNet2DConditionModel (unet/config.json).
struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  std::vector<int64_t> block_out_channels;
  int64_t layers_per_block = 2;
  // One entry per down block. SD v1 convention: attention_head_dim is the NUMBER OF HEADS (the
  // diffusers naming bug kept for compatibility); when num_attention_heads is given it wins.
  std::vector<int64_t> attention_head_dim;
  std::optional<std::vector<int64_t>> num_attention_heads;
  int64_t cross_attention_dim = 768;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  std::vector<std::string> down_block_types;
  std::vector<std::string> up_block_types;
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  std::optional<int64_t> sample_size;
  bool center_input_sample = false;
  std::string act_fn = "silu";
  std::vector<int64_t> transformer_layers_per_block;  // one entry per down block (default 1)
  bool use_linear_projection = false;
  bool upcast_attention = false;
  bool only_cross_attention = false;
  bool dual_cross_attention = false;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;
  std::string time_embedding_type = "positional";
  std::string resnet_time_scale_shift = "default";
  std::optional<std::string> class_embed_type;
  std::optional<std::string> addition_embed_type;
  std::optional<int64_t> time_cond_proj_dim;
  // Heads of down block i (num_attention_heads if given, else attention_head_dim: SD v1).
  int64_t heads(size_t block) const;
};

// diffusers AutoencoderKL (vae/config.json); only the decoder is built by synthstream.
struct VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels;
  int64_t layers_per_block = 1;
  int64_t norm_num_groups = 32;
  std::string act_fn = "silu";
  double scaling_factor = 0.18215;
  std::vector<std::string> up_block_types;
  std::vector<std::string> down_block_types;
  bool mid_block_add_attention = true;
  // The SD v1 VAE overflows in fp16; diffusers decodes in fp32 when this is set (the default).
  bool force_upcast = true;
  bool use_post_quant_conv = true;
  bool use_quant_conv = true;
  std::optional<int64_t> sample_size;
};

// scheduler/scheduler_config.json: the union of the keys of the schedulers synthstream implements
// (PNDM, DDIM, DPM-Solver++ multistep, Euler discrete). Missing keys read here take the default of
// the file's own _class_name in diffusers (set_alpha_to_one: PNDM false, DDIM true; clip_sample:
// DDIM true; timestep_spacing: leading for PNDM/DDIM, linspace for DPM-Solver/Euler). `present`
// lists the keys the file really had: make_scheduler builds any scheduler class from this config
// as diffusers' from_config does, where the keys a file lacks take the NEW class's defaults.
struct SchedulerConfig {
  std::string class_name;
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";  // linear | scaled_linear | squaredcos_cap_v2
  std::vector<double> trained_betas;     // empty = none
  std::string prediction_type = "epsilon";
  bool set_alpha_to_one = false;
  bool skip_prk_steps = false;
  int64_t steps_offset = 0;
  std::string timestep_spacing = "leading";  // leading | linspace | trailing
  bool clip_sample = false;
  double clip_sample_range = 1.0;
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double sample_max_value = 1.0;
  bool rescale_betas_zero_snr = false;
  int64_t solver_order = 2;
  std::string algorithm_type = "dpmsolver++";
  std::string solver_type = "midpoint";
  bool lower_order_final = true;
  bool euler_at_final = false;
  bool use_karras_sigmas = false;
  std::string final_sigmas_type = "zero";
  std::string interpolation_type = "linear";
  std::string timestep_type = "discrete";
  std::optional<double> sigma_min, sigma_max;
  std::set<std::string> present;
  nlohmann::json raw;  // the whole file, for keys not modelled here
};

UNetConfig load_unet_config(const std::string& config_json_path);
VaeConfig load_vae_config(const std::string& config_json_path);
SchedulerConfig load_scheduler_config(const std::string& config_json_path);

// A whole SD v1.x pipeline directory.
struct SdModelDir {
  std::string dir;
  nlohmann::json model_index;
  TextEncoderConfig text_encoder;
  UNetConfig unet;
  VaeConfig vae;
  SchedulerConfig scheduler;
  std::string tokenizer_dir() const { return dir + "/tokenizer"; }
  std::string component_dir(const std::string& component) const { return dir + "/" + component; }
};

// Reads model_index.json (checks the component classes: CLIPTextModel, UNet2DConditionModel,
// AutoencoderKL) and the four configs.
SdModelDir load_model_dir(const std::string& dir);

}  // namespace synth
