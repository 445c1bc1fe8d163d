// SD v1 U-Net, block by block as diffusers builds it (see unet.hpp for the key layout).
#include "diffusion/unet.hpp"

#include <cmath>

#include "core/error.hpp"
#include "diffusion/blocks.hpp"

namespace synth {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv2d(int64_t in, int64_t out, int64_t k) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(k / 2));
}

// Multi-head attention of the spatial transformer (Vaswani et al. 2017): q from x, k and v from
// `context` (x itself for self-attention). No biases on q/k/v, as in SD v1.
class CrossAttentionImpl : public nn::Module {
 public:
  CrossAttentionImpl(int64_t dim, int64_t context_dim, int64_t heads, int64_t head_dim) : heads_(heads), head_dim_(head_dim) {
    const int64_t inner = heads * head_dim;
    to_q = register_module("to_q", nn::Linear(nn::LinearOptions(dim, inner).bias(false)));
    to_k = register_module("to_k", nn::Linear(nn::LinearOptions(context_dim, inner).bias(false)));
    to_v = register_module("to_v", nn::Linear(nn::LinearOptions(context_dim, inner).bias(false)));
    out_ = nn::Linear(inner, dim);
    to_out = register_module("to_out", nn::ModuleList(out_));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context) {
    const int64_t b = x.size(0);
    const auto split = [&](const torch::Tensor& t) { return t.view({b, t.size(1), heads_, head_dim_}).transpose(1, 2); };
    const torch::Tensor q = split(to_q(x)), k = split(to_k(context)), v = split(to_v(context));
    const torch::Tensor o = at::scaled_dot_product_attention(q, k, v);
    return out_(o.transpose(1, 2).reshape({b, x.size(1), heads_ * head_dim_}));
  }

 private:
  int64_t heads_, head_dim_;
  nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, out_{nullptr};
  nn::ModuleList to_out{nullptr};
};
TORCH_MODULE(CrossAttention);

// GEGLU feed-forward (Shazeer 2020): proj to 2*inner, h * gelu(gate), back to dim.
class FeedForwardImpl : public nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t mult = 4) {
    proj_ = nn::Linear(dim, 2 * dim * mult);
    auto geglu = std::make_shared<nn::Module>();
    geglu->register_module("proj", proj_);
    out_ = nn::Linear(dim * mult, dim);
    // net.0 = GEGLU, net.1 = dropout (no parameters), net.2 = output projection.
    net = register_module("net", nn::ModuleList());
    net->push_back(geglu);
    net->push_back(nn::Dropout(0.0));
    net->push_back(out_);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto hg = proj_(x).chunk(2, -1);
    return out_(hg[0] * torch::gelu(hg[1]));
  }

 private:
  nn::Linear proj_{nullptr}, out_{nullptr};
  nn::ModuleList net{nullptr};
};
TORCH_MODULE(FeedForward);

// Pre-LN transformer block: self-attention, cross-attention, GEGLU, each with a residual.
class BasicTransformerBlockImpl : public nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t context_dim, int64_t heads, int64_t head_dim) {
    norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5)));
    attn1 = register_module("attn1", CrossAttention(dim, dim, heads, head_dim));
    norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5)));
    attn2 = register_module("attn2", CrossAttention(dim, context_dim, heads, head_dim));
    norm3 = register_module("norm3", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5)));
    ff = register_module("ff", FeedForward(dim));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& context) {
    const torch::Tensor n1 = norm1(x);
    x = attn1(n1, n1) + x;
    x = attn2(norm2(x), context) + x;
    return ff(norm3(x)) + x;
  }

 private:
  nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  CrossAttention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

// Spatial transformer (diffusers Transformer2DModel): GroupNorm, project in, transformer blocks
// over the h*w positions, project out, residual.
class Transformer2DImpl : public nn::Module {
 public:
  Transformer2DImpl(const UNetConfig& c, int64_t channels, int64_t heads, int64_t layers) : linear_(c.use_linear_projection) {
    if (heads <= 0 || channels % heads) throw InputError("unet/config.json: " + std::to_string(channels) +
                                                         " channels do not split into " + std::to_string(heads) + " heads");
    const int64_t inner = channels;  // heads * (channels / heads)
    norm = register_module("norm", nn::GroupNorm(nn::GroupNormOptions(c.norm_num_groups, channels).eps(1e-6)));
    if (linear_) {
      proj_in_l = register_module("proj_in", nn::Linear(channels, inner));
      proj_out_l = register_module("proj_out", nn::Linear(inner, channels));
    } else {
      proj_in_c = register_module("proj_in", nn::Conv2d(nn::Conv2dOptions(channels, inner, 1)));
      proj_out_c = register_module("proj_out", nn::Conv2d(nn::Conv2dOptions(inner, channels, 1)));
    }
    transformer_blocks = register_module("transformer_blocks", nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i)
      transformer_blocks->push_back(BasicTransformerBlock(inner, c.cross_attention_dim, heads, channels / heads));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context) {
    const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
    torch::Tensor y = norm(x);
    if (!linear_) y = proj_in_c(y);
    y = y.permute({0, 2, 3, 1}).reshape({b, h * w, y.size(1)});
    if (linear_) y = proj_in_l(y);
    for (const auto& blk : *transformer_blocks) y = blk->as<BasicTransformerBlockImpl>()->forward(y, context);
    if (linear_) y = proj_out_l(y);
    y = y.reshape({b, h, w, y.size(2)}).permute({0, 3, 1, 2});
    if (!linear_) y = proj_out_c(y.contiguous());
    return y + x;
  }

 private:
  bool linear_;
  nn::GroupNorm norm{nullptr};
  nn::Conv2d proj_in_c{nullptr}, proj_out_c{nullptr};
  nn::Linear proj_in_l{nullptr}, proj_out_l{nullptr};
  nn::ModuleList transformer_blocks{nullptr};
};
TORCH_MODULE(Transformer2D);

ResnetBlock2D resnet(const UNetConfig& c, int64_t in, int64_t out, int64_t temb, double scale = 1.0) {
  ResnetBlock2DOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.temb_channels = temb;
  o.groups = c.norm_num_groups;
  o.eps = c.norm_eps;
  o.output_scale_factor = scale;
  return ResnetBlock2D(o);
}

bool has_cross_attention(const std::string& type, const std::string& file_key) {
  if (type == "CrossAttnDownBlock2D" || type == "CrossAttnUpBlock2D") return true;
  if (type == "DownBlock2D" || type == "UpBlock2D") return false;
  throw InputError("unet/config.json: " + file_key + " '" + type + "' is not an SD v1 block type");
}

// CrossAttnDownBlock2D / DownBlock2D: (resnet [+ transformer]) x layers, then a stride-2 conv.
class DownBlockImpl : public nn::Module {
 public:
  DownBlockImpl(const UNetConfig& c, size_t i, int64_t in, int64_t out, int64_t temb, bool cross, bool downsample) {
    resnets = register_module("resnets", nn::ModuleList());
    if (cross) attentions = register_module("attentions", nn::ModuleList());
    for (int64_t j = 0; j < c.layers_per_block; ++j) {
      resnets->push_back(resnet(c, j == 0 ? in : out, out, temb));
      if (cross) attentions->push_back(Transformer2D(c, out, c.heads(i), c.transformer_layers_per_block.at(i)));
    }
    if (downsample) {
      downsamplers = register_module("downsamplers", nn::ModuleList());
      downsamplers->push_back(Downsample2D(out, out, c.downsample_padding));
    }
  }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& ctx, std::vector<torch::Tensor>& skips) {
    for (size_t j = 0; j < resnets->size(); ++j) {
      h = resnets[j]->as<ResnetBlock2DImpl>()->forward(h, temb);
      if (attentions) h = attentions[j]->as<Transformer2DImpl>()->forward(h, ctx);
      skips.push_back(h);
    }
    if (downsamplers) {
      h = downsamplers[0]->as<Downsample2DImpl>()->forward(h);
      skips.push_back(h);
    }
    return h;
  }

 private:
  nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};
};
TORCH_MODULE(DownBlock);

// CrossAttnUpBlock2D / UpBlock2D: layers+1 resnets, each on [h; skip], then nearest x2 + conv.
class UpBlockImpl : public nn::Module {
 public:
  UpBlockImpl(const UNetConfig& c, int64_t heads, int64_t tlayers, int64_t prev_out, int64_t out, int64_t in, int64_t temb,
              bool cross, bool upsample) {
    resnets = register_module("resnets", nn::ModuleList());
    if (cross) attentions = register_module("attentions", nn::ModuleList());
    const int64_t n = c.layers_per_block + 1;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t skip = j == n - 1 ? in : out, res_in = j == 0 ? prev_out : out;
      resnets->push_back(resnet(c, res_in + skip, out, temb));
      if (cross) attentions->push_back(Transformer2D(c, out, heads, tlayers));
    }
    if (upsample) {
      upsamplers = register_module("upsamplers", nn::ModuleList());
      upsamplers->push_back(Upsample2D(out, out));
    }
  }
  size_t layers() const { return resnets->size(); }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& ctx, std::vector<torch::Tensor>& skips,
                        const std::vector<int64_t>& upsample_size) {
    for (size_t j = 0; j < resnets->size(); ++j) {
      h = torch::cat({h, skips.back()}, 1);
      skips.pop_back();
      h = resnets[j]->as<ResnetBlock2DImpl>()->forward(h, temb);
      if (attentions) h = attentions[j]->as<Transformer2DImpl>()->forward(h, ctx);
    }
    if (upsamplers)
      h = upsamplers[0]->as<Upsample2DImpl>()->forward(
          h, upsample_size.empty() ? std::nullopt : std::optional<std::vector<int64_t>>(upsample_size));
    return h;
  }

 private:
  nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};
};
TORCH_MODULE(UpBlock);

class MidBlockImpl : public nn::Module {
 public:
  MidBlockImpl(const UNetConfig& c, int64_t ch, int64_t temb) {
    const size_t last = c.block_out_channels.size() - 1;
    resnets = register_module("resnets", nn::ModuleList());
    attentions = register_module("attentions", nn::ModuleList());
    resnets->push_back(resnet(c, ch, ch, temb, c.mid_block_scale_factor));
    attentions->push_back(Transformer2D(c, ch, c.heads(last), c.transformer_layers_per_block.at(last)));
    resnets->push_back(resnet(c, ch, ch, temb, c.mid_block_scale_factor));
  }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& ctx) {
    h = resnets[0]->as<ResnetBlock2DImpl>()->forward(h, temb);
    h = attentions[0]->as<Transformer2DImpl>()->forward(h, ctx);
    return resnets[1]->as<ResnetBlock2DImpl>()->forward(h, temb);
  }

 private:
  nn::ModuleList resnets{nullptr}, attentions{nullptr};
};
TORCH_MODULE(MidBlock);

class TimestepEmbeddingImpl : public nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t in, int64_t dim) {
    linear_1 = register_module("linear_1", nn::Linear(in, dim));
    linear_2 = register_module("linear_2", nn::Linear(dim, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) { return linear_2(torch::silu(linear_1(x))); }

 private:
  nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

// Sinusoidal timestep features (Vaswani et al. 2017; DDPM): exp(-ln(10000) k / (half - shift)),
// [sin, cos] or [cos, sin] with flip_sin_to_cos, computed in float32 as diffusers does.
torch::Tensor timestep_features(const torch::Tensor& t, int64_t dim, bool flip, double shift) {
  const int64_t half = dim / 2;
  const torch::Tensor k = torch::arange(0, half, torch::TensorOptions().dtype(torch::kFloat32).device(t.device()));
  const torch::Tensor freqs = torch::exp(-std::log(10000.0) * k / (double(half) - shift));
  const torch::Tensor args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  torch::Tensor emb = torch::cat({torch::sin(args), torch::cos(args)}, -1);
  if (flip) emb = torch::cat({emb.slice(1, half), emb.slice(1, 0, half)}, -1);
  if (dim % 2) emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

void check_supported(const UNetConfig& c) {
  const auto fail = [](const std::string& what) { throw InputError("unet/config.json: " + what + " is not supported (SD v1 U-Net)"); };
  if (c.block_out_channels.empty()) fail("an empty block_out_channels");
  if (c.down_block_types.size() != c.block_out_channels.size() || c.up_block_types.size() != c.block_out_channels.size())
    throw InputError("unet/config.json: down_block_types/up_block_types must have one entry per block_out_channels");
  if (c.mid_block_type != "UNetMidBlock2DCrossAttn") fail("mid_block_type '" + c.mid_block_type + "'");
  if (c.act_fn != "silu") fail("act_fn '" + c.act_fn + "'");
  if (c.class_embed_type || c.addition_embed_type || c.time_cond_proj_dim) fail("a class/addition/condition embedding");
  if (c.only_cross_attention || c.dual_cross_attention) fail("only/dual cross-attention");
  if (c.upcast_attention) fail("upcast_attention");
  if (c.time_embedding_type != "positional") fail("time_embedding_type '" + c.time_embedding_type + "'");
  if (c.resnet_time_scale_shift != "default") fail("resnet_time_scale_shift '" + c.resnet_time_scale_shift + "'");
}

}  // namespace

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  UNetConfig& c = config_;
  check_supported(c);
  if (c.transformer_layers_per_block.empty()) c.transformer_layers_per_block.assign(c.block_out_channels.size(), 1);
  const auto& boc = c.block_out_channels;
  const size_t n = boc.size();
  const int64_t temb = boc[0] * 4;
  conv_in = register_module("conv_in", conv2d(c.in_channels, boc[0], c.conv_in_kernel));
  time_embedding = register_module("time_embedding", TimestepEmbedding(boc[0], temb).ptr());
  down_blocks = register_module("down_blocks", nn::ModuleList());
  int64_t out = boc[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = out;
    out = boc[i];
    down_blocks->push_back(DownBlock(c, i, in, out, temb, has_cross_attention(c.down_block_types[i], "down_block_types"), i + 1 < n));
  }
  mid_block = register_module("mid_block", MidBlock(c, boc[n - 1], temb).ptr());
  up_blocks = register_module("up_blocks", nn::ModuleList());
  out = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;  // the down block this up block mirrors
    const int64_t prev_out = out;
    out = boc[r];
    const int64_t in = boc[r == 0 ? 0 : r - 1];
    up_blocks->push_back(UpBlock(c, c.heads(r), c.transformer_layers_per_block.at(r), prev_out, out, in, temb,
                                 has_cross_attention(c.up_block_types[i], "up_block_types"), i + 1 < n));
  }
  conv_norm_out = register_module("conv_norm_out", nn::GroupNorm(nn::GroupNormOptions(c.norm_num_groups, boc[0]).eps(c.norm_eps)));
  conv_out = register_module("conv_out", conv2d(boc[0], c.out_channels, c.conv_out_kernel));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& sample, const torch::Tensor& timesteps, const torch::Tensor& ctx) {
  const int64_t b = sample.size(0);
  torch::Tensor t = timesteps.to(sample.device());
  if (t.dim() == 0) t = t.expand({b});
  const torch::Tensor features = timestep_features(t, config_.block_out_channels[0], config_.flip_sin_to_cos, config_.freq_shift);
  const torch::Tensor temb = time_embedding->as<TimestepEmbeddingImpl>()->forward(features.to(sample.scalar_type()));

  torch::Tensor h = config_.center_input_sample ? 2 * sample - 1 : sample;
  h = conv_in(h);
  std::vector<torch::Tensor> skips{h};
  for (const auto& blk : *down_blocks) h = blk->as<DownBlockImpl>()->forward(h, temb, ctx, skips);
  h = mid_block->as<MidBlockImpl>()->forward(h, temb, ctx);
  for (size_t i = 0; i < up_blocks->size(); ++i) {
    auto* up = up_blocks[i]->as<UpBlockImpl>();
    // The next up block's first skip decides the upsampled size, so odd sizes (6 -> 3 -> 2) come back exactly.
    std::vector<int64_t> size;
    if (skips.size() > up->layers()) {
      const auto& next = skips[skips.size() - 1 - up->layers()];
      size = {next.size(2), next.size(3)};
    }
    h = up->forward(h, temb, ctx, skips, size);
  }
  return conv_out(torch::silu(conv_norm_out(h)));
}

}  // namespace synth
