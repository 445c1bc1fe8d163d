// CLIP text encoder (Radford et al., "Learning Transferable Visual Models From Natural Language
// Supervision", 2021), the conditioning model of Stable Diffusion v1: token + position embeddings,
// pre-LayerNorm transformer layers with causal self-attention, final LayerNorm. SD conditions the
// U-Net on last_hidden_state [B, 77, hidden] (Rombach et al., CVPR 2022, Sec. 3.3).
//
// Module names mirror the transformers keys (text_model.embeddings.token_embedding,
// text_model.encoder.layers.N.self_attn.q_proj, ...), so loading is the identity map through
// load_module_weights (diffusion/weights.hpp: load_text_encoder).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace synth {

// The fields of a transformers CLIPTextConfig (text_encoder/config.json) that shape the model.
struct TextEncoderConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t max_position_embeddings = 0;
  int64_t vocab_size = 0;
  std::string hidden_act = "quick_gelu";  // quick_gelu | gelu | gelu_new | relu
  double layer_norm_eps = 1e-5;
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;
  std::optional<int64_t> projection_dim;
};

// Reads and validates <dir>/config.json-style files; missing keys or wrong types -> InputError
// naming the file and the key. Required: the six sizes; others default as in transformers.
TextEncoderConfig load_text_encoder_config(const std::string& config_json_path);

class ClipTextModel;  // the torch::nn::Module tree (clip_text_encoder.cpp)

class ClipTextEncoder {
 public:
  // Randomly initialised model of this shape; load_text_encoder (diffusion/weights.hpp, where every
  // weight-name rule lives) fills it from a model directory.
  explicit ClipTextEncoder(const TextEncoderConfig& config);

  // input_ids: int64 [B, L] with L <= max_position_embeddings -> last_hidden_state [B, L, hidden]
  // (dtype/device of the weights). Runs without autograd.
  torch::Tensor forward(const torch::Tensor& input_ids) const;
  // The same with autograd, for training the encoder with a model (stream-sd-train).
  torch::Tensor forward_train(const torch::Tensor& input_ids);

  const TextEncoderConfig& config() const { return config_; }
  torch::nn::Module& module();
  void to(torch::Device device, torch::Dtype dtype = torch::kFloat32);

 private:
  void check_ids(const torch::Tensor& input_ids) const;
  TextEncoderConfig config_;
  std::shared_ptr<ClipTextModel> model_;
};

}  // namespace synth
