#include "text/clip_text_encoder.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "io/safetensors.hpp"

namespace synth {

namespace {

using nlohmann::json;

int64_t json_int(const json& j, const std::string& path, const std::string& key) {
  if (!j.contains(key) || j.at(key).is_null()) throw InputError(path + ": missing key '" + key + "'");
  const json& v = j.at(key);
  if (!v.is_number_integer()) throw InputError(path + ": key '" + key + "' must be an integer, got " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x <= 0) throw InputError(path + ": key '" + key + "' must be positive, got " + v.dump());
  return x;
}

std::optional<int64_t> json_opt_int(const json& j, const std::string& path, const std::string& key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const json& v = j.at(key);
  if (!v.is_number_integer()) throw InputError(path + ": key '" + key + "' must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

// Activations of transformers' ACT2FN that CLIP checkpoints use. quick_gelu is the sigmoid
// approximation x*sigmoid(1.702x) of the original OpenAI CLIP (Hendrycks & Gimpel 2016, Sec. 2).
torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  if (name == "quick_gelu") return x * torch::sigmoid(1.702 * x);
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written out: 1.13 and 2.x differ in the
    // gelu approximate= argument.
    return 0.5 * x * (1.0 + torch::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  }
  if (name == "relu") return torch::relu(x);
  throw InputError("text encoder: unsupported hidden_act '" + name + "'");
}

}  // namespace

TextEncoderConfig load_text_encoder_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(with_errno(path + ": cannot open config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw InputError(path + ": top level is not a JSON object");
  TextEncoderConfig c;
  c.hidden_size = json_int(j, path, "hidden_size");
  c.intermediate_size = json_int(j, path, "intermediate_size");
  c.num_hidden_layers = json_int(j, path, "num_hidden_layers");
  c.num_attention_heads = json_int(j, path, "num_attention_heads");
  c.max_position_embeddings = json_int(j, path, "max_position_embeddings");
  c.vocab_size = json_int(j, path, "vocab_size");
  if (j.contains("hidden_act") && !j["hidden_act"].is_null()) {
    if (!j["hidden_act"].is_string())
      throw InputError(path + ": key 'hidden_act' must be a string, got " + j["hidden_act"].dump());
    c.hidden_act = j["hidden_act"].get<std::string>();
  }
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu" && c.hidden_act != "gelu_new" &&
      c.hidden_act != "gelu_pytorch_tanh" && c.hidden_act != "relu")
    throw InputError(path + ": key 'hidden_act' value '" + c.hidden_act + "' is not supported");
  if (j.contains("layer_norm_eps") && !j["layer_norm_eps"].is_null()) {
    if (!j["layer_norm_eps"].is_number())
      throw InputError(path + ": key 'layer_norm_eps' must be a number, got " + j["layer_norm_eps"].dump());
    c.layer_norm_eps = j["layer_norm_eps"].get<double>();
  }
  c.bos_token_id = json_opt_int(j, path, "bos_token_id");
  c.eos_token_id = json_opt_int(j, path, "eos_token_id");
  c.pad_token_id = json_opt_int(j, path, "pad_token_id");
  c.projection_dim = json_opt_int(j, path, "projection_dim");
  if (c.hidden_size % c.num_attention_heads != 0)
    throw InputError(path + ": key 'num_attention_heads' (" + std::to_string(c.num_attention_heads) +
                     ") does not divide hidden_size (" + std::to_string(c.hidden_size) + ")");
  return c;
}

// The module tree, named as transformers' CLIPTextModel so parameter names equal the file keys.
struct ClipAttention : torch::nn::Module {
  ClipAttention(int64_t dim, int64_t heads) : heads(heads) {
    q_proj = register_module("q_proj", torch::nn::Linear(dim, dim));
    k_proj = register_module("k_proj", torch::nn::Linear(dim, dim));
    v_proj = register_module("v_proj", torch::nn::Linear(dim, dim));
    out_proj = register_module("out_proj", torch::nn::Linear(dim, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads;
    auto split = [&](const torch::Tensor& t) { return t.view({b, l, heads, hd}).transpose(1, 2); };
    // Causal: a token attends only to itself and earlier tokens (CLIP's text transformer is a
    // GPT-style decoder, Radford et al. 2021, Sec. 2.4).
    auto o = at::scaled_dot_product_attention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)), /*attn_mask=*/{},
                                           /*dropout_p=*/0.0, /*is_causal=*/true);
    return out_proj(o.transpose(1, 2).reshape({b, l, d}));
  }
  int64_t heads;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};

struct ClipMlp : torch::nn::Module {
  ClipMlp(int64_t dim, int64_t hidden, std::string act) : act(std::move(act)) {
    fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2(activation(act, fc1(x))); }
  std::string act;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

struct ClipEncoderLayer : torch::nn::Module {
  explicit ClipEncoderLayer(const TextEncoderConfig& c) {
    auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)); };
    self_attn = register_module("self_attn", std::make_shared<ClipAttention>(c.hidden_size, c.num_attention_heads));
    layer_norm1 = register_module("layer_norm1", ln());
    mlp = register_module("mlp", std::make_shared<ClipMlp>(c.hidden_size, c.intermediate_size, c.hidden_act));
    layer_norm2 = register_module("layer_norm2", ln());
  }
  // Pre-LN residual blocks.
  torch::Tensor forward(torch::Tensor h) {
    h = h + self_attn->forward(layer_norm1(h));
    return h + mlp->forward(layer_norm2(h));
  }
  std::shared_ptr<ClipAttention> self_attn;
  std::shared_ptr<ClipMlp> mlp;
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
};

struct ClipEmbeddings : torch::nn::Module {
  explicit ClipEmbeddings(const TextEncoderConfig& c) {
    token_embedding = register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.hidden_size));
    position_embedding =
        register_module("position_embedding", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  }
  torch::Tensor forward(const torch::Tensor& ids) {
    auto positions = torch::arange(ids.size(1), torch::TensorOptions().dtype(torch::kInt64).device(ids.device()));
    return token_embedding(ids) + position_embedding(positions).unsqueeze(0);
  }
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
};

struct ClipEncoder : torch::nn::Module {
  explicit ClipEncoder(const TextEncoderConfig& c) {
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(std::make_shared<ClipEncoderLayer>(c));
  }
  torch::Tensor forward(torch::Tensor h) {
    for (const auto& layer : *layers) h = layer->as<ClipEncoderLayer>()->forward(h);
    return h;
  }
  torch::nn::ModuleList layers{nullptr};
};

struct ClipTextTransformer : torch::nn::Module {
  explicit ClipTextTransformer(const TextEncoderConfig& c) {
    embeddings = register_module("embeddings", std::make_shared<ClipEmbeddings>(c));
    encoder = register_module("encoder", std::make_shared<ClipEncoder>(c));
    final_layer_norm = register_module(
        "final_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  }
  torch::Tensor forward(const torch::Tensor& ids) {
    return final_layer_norm(encoder->forward(embeddings->forward(ids)));
  }
  std::shared_ptr<ClipEmbeddings> embeddings;
  std::shared_ptr<ClipEncoder> encoder;
  torch::nn::LayerNorm final_layer_norm{nullptr};
};

class ClipTextModel : public torch::nn::Module {
 public:
  explicit ClipTextModel(const TextEncoderConfig& c) {
    text_model = register_module("text_model", std::make_shared<ClipTextTransformer>(c));
  }
  std::shared_ptr<ClipTextTransformer> text_model;
};

ClipTextEncoder::ClipTextEncoder(const TextEncoderConfig& config)
    : config_(config), model_(std::make_shared<ClipTextModel>(config)) {
  model_->eval();
}

void ClipTextEncoder::check_ids(const torch::Tensor& input_ids) const {
  if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kInt64)
    throw InputError("text encoder: input_ids must be int64 [batch, length]");
  if (input_ids.size(1) > config_.max_position_embeddings)
    throw InputError("text encoder: input_ids length " + std::to_string(input_ids.size(1)) + " exceeds max_position_embeddings " +
                     std::to_string(config_.max_position_embeddings));
  if (input_ids.numel() > 0) {
    const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      throw InputError("text encoder: input_ids contain token " + std::to_string(lo < 0 ? lo : hi) +
                       " outside the vocabulary of " + std::to_string(config_.vocab_size));
  }
}

torch::Tensor ClipTextEncoder::forward(const torch::Tensor& input_ids) const {
  check_ids(input_ids);
  torch::NoGradGuard no_grad;
  const auto device = model_->text_model->embeddings->token_embedding->weight.device();
  return model_->text_model->forward(input_ids.to(device));
}

torch::Tensor ClipTextEncoder::forward_train(const torch::Tensor& input_ids) {
  check_ids(input_ids);
  const auto device = model_->text_model->embeddings->token_embedding->weight.device();
  return model_->text_model->forward(input_ids.to(device));
}

torch::nn::Module& ClipTextEncoder::module() { return *model_; }

void ClipTextEncoder::to(torch::Device device, torch::Dtype dtype) { model_->to(device, dtype); }

}  // namespace synth
