#include "diffusion/vae.hpp"

#include "core/error.hpp"
#include "diffusion/blocks.hpp"

namespace synth {

namespace {
// diffusers builds the VAE's norms with eps 1e-6 (Decoder: resnet_eps=1e-6, conv_norm_out eps=1e-6).
constexpr double kVaeEps = 1e-6;
}  // namespace

struct VaeMidBlock : torch::nn::Module {
  VaeMidBlock(int64_t channels, int64_t groups, bool attention) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    for (int i = 0; i < 2; ++i)
      resnets->push_back(ResnetBlock2D(ResnetBlock2DOptions{channels, channels, 0, groups, kVaeEps, 1.0}));
    if (attention) {
      attentions = register_module("attentions", torch::nn::ModuleList());
      attentions->push_back(VaeAttention(channels, groups, kVaeEps, 1));
    }
  }
  torch::Tensor forward(torch::Tensor h) {
    h = resnets[0]->as<ResnetBlock2DImpl>()->forward(h);
    if (attentions) h = attentions[0]->as<VaeAttentionImpl>()->forward(h);
    return resnets[1]->as<ResnetBlock2DImpl>()->forward(h);
  }
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
};

struct UpDecoderBlock : torch::nn::Module {
  UpDecoderBlock(int64_t in, int64_t out, int64_t layers, int64_t groups, bool upsample) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    for (int64_t j = 0; j < layers; ++j)
      resnets->push_back(ResnetBlock2D(ResnetBlock2DOptions{j == 0 ? in : out, out, 0, groups, kVaeEps, 1.0}));
    if (upsample) {
      upsamplers = register_module("upsamplers", torch::nn::ModuleList());
      upsamplers->push_back(Upsample2D(out, out));
    }
  }
  torch::Tensor forward(torch::Tensor h) {
    for (const auto& r : *resnets) h = r->as<ResnetBlock2DImpl>()->forward(h);
    if (upsamplers) h = upsamplers[0]->as<Upsample2DImpl>()->forward(h);
    return h;
  }
  torch::nn::ModuleList resnets{nullptr}, upsamplers{nullptr};
};

struct VaeDecoderNet : torch::nn::Module {
  explicit VaeDecoderNet(const VaeConfig& c) {
    const auto& ch = c.block_out_channels;
    const int64_t n = int64_t(ch.size());
    conv_in = register_module("conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.latent_channels, ch.back(), 3).padding(1)));
    mid_block = register_module("mid_block", std::make_shared<VaeMidBlock>(ch.back(), c.norm_num_groups, c.mid_block_add_attention));
    up_blocks = register_module("up_blocks", torch::nn::ModuleList());
    int64_t out = ch.back();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t prev = out;
      out = ch[size_t(n - 1 - i)];
      up_blocks->push_back(std::make_shared<UpDecoderBlock>(prev, out, c.layers_per_block + 1, c.norm_num_groups, i != n - 1));
    }
    conv_norm_out = register_module(
        "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, ch.front()).eps(kVaeEps)));
    conv_out = register_module("conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(ch.front(), c.out_channels, 3).padding(1)));
  }
  torch::Tensor forward(const torch::Tensor& z) {
    auto h = mid_block->forward(conv_in(z));
    for (const auto& b : *up_blocks) h = b->as<UpDecoderBlock>()->forward(h);
    return conv_out(torch::silu(conv_norm_out(h)));
  }
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::shared_ptr<VaeMidBlock> mid_block;
  torch::nn::ModuleList up_blocks{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};

struct DownEncoderBlock : torch::nn::Module {
  DownEncoderBlock(int64_t in, int64_t out, int64_t layers, int64_t groups, bool downsample) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    for (int64_t j = 0; j < layers; ++j)
      resnets->push_back(ResnetBlock2D(ResnetBlock2DOptions{j == 0 ? in : out, out, 0, groups, kVaeEps, 1.0}));
    if (downsample) {
      downsamplers = register_module("downsamplers", torch::nn::ModuleList());
      downsamplers->push_back(Downsample2D(out, out, /*padding=*/0));
    }
  }
  torch::Tensor forward(torch::Tensor h) {
    for (const auto& r : *resnets) h = r->as<ResnetBlock2DImpl>()->forward(h);
    if (downsamplers) h = downsamplers[0]->as<Downsample2DImpl>()->forward(h);
    return h;
  }
  torch::nn::ModuleList resnets{nullptr}, downsamplers{nullptr};
};

struct VaeEncoderNet : torch::nn::Module {
  explicit VaeEncoderNet(const VaeConfig& c) {
    const auto& ch = c.block_out_channels;
    const size_t n = ch.size();
    conv_in = register_module("conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_channels, ch.front(), 3).padding(1)));
    down_blocks = register_module("down_blocks", torch::nn::ModuleList());
    for (size_t i = 0; i < n; ++i)
      down_blocks->push_back(std::make_shared<DownEncoderBlock>(i == 0 ? ch.front() : ch[i - 1], ch[i], c.layers_per_block,
                                                                c.norm_num_groups, i + 1 != n));
    mid_block = register_module("mid_block", std::make_shared<VaeMidBlock>(ch.back(), c.norm_num_groups, c.mid_block_add_attention));
    conv_norm_out = register_module(
        "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, ch.back()).eps(kVaeEps)));
    // double_z: mean and log-variance.
    conv_out = register_module("conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(ch.back(), 2 * c.latent_channels, 3).padding(1)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv_in(x);
    for (const auto& b : *down_blocks) h = b->as<DownEncoderBlock>()->forward(h);
    h = mid_block->forward(h);
    return conv_out(torch::silu(conv_norm_out(h)));
  }
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  std::shared_ptr<VaeMidBlock> mid_block;
  torch::nn::GroupNorm conv_norm_out{nullptr};
};

// Registration order = diffusers' state_dict order: encoder, decoder, quant_conv, post_quant_conv.
class VaeModel : public torch::nn::Module {
 public:
  VaeModel(const VaeConfig& c, bool with_encoder) {
    if (with_encoder) encoder = register_module("encoder", std::make_shared<VaeEncoderNet>(c));
    decoder = register_module("decoder", std::make_shared<VaeDecoderNet>(c));
    const auto moments = 2 * c.latent_channels;
    if (with_encoder && c.use_quant_conv)
      quant_conv = register_module("quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(moments, moments, 1)));
    if (c.use_post_quant_conv)
      post_quant_conv = register_module(
          "post_quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.latent_channels, c.latent_channels, 1)));
  }
  std::shared_ptr<VaeEncoderNet> encoder;
  std::shared_ptr<VaeDecoderNet> decoder;
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
};

VaeDecoder::VaeDecoder(const VaeConfig& config)
    : config_(config), model_(std::make_shared<VaeModel>(config, /*with_encoder=*/false)) {
  model_->eval();
}

torch::Tensor VaeDecoder::decode(const torch::Tensor& z) const {
  if (z.dim() != 4 || z.size(1) != config_.latent_channels)
    throw InputError("VAE decode: latents must be [B, " + std::to_string(config_.latent_channels) + ", h, w]");
  torch::NoGradGuard no_grad;
  const auto& w = model_->decoder->conv_in->weight;
  auto h = z.to(w.device(), w.scalar_type()) / config_.scaling_factor;
  if (model_->post_quant_conv) h = model_->post_quant_conv(h);
  return model_->decoder->forward(h);
}

int64_t VaeDecoder::upscale() const { return int64_t(1) << (config_.block_out_channels.size() - 1); }

torch::nn::Module& VaeDecoder::module() { return *model_; }

void VaeDecoder::to(torch::Device device, torch::Dtype dtype) { model_->to(device, dtype); }

torch::Tensor LatentPosterior::kl() const {
  return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum({1, 2, 3});
}

AutoencoderKL::AutoencoderKL(const VaeConfig& config)
    : config_(config), model_(std::make_shared<VaeModel>(config, /*with_encoder=*/true)) {}

LatentPosterior AutoencoderKL::encode(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != config_.in_channels)
    throw InputError("VAE encode: images must be [B, " + std::to_string(config_.in_channels) + ", H, W]");
  auto moments = model_->encoder->forward(x);
  if (model_->quant_conv) moments = model_->quant_conv(moments);
  auto parts = moments.chunk(2, 1);
  return {parts[0], parts[1].clamp(-30.0, 20.0)};
}

torch::Tensor AutoencoderKL::decode(const torch::Tensor& z) {
  auto h = model_->post_quant_conv ? model_->post_quant_conv(z) : z;
  return model_->decoder->forward(h);
}

torch::nn::Module& AutoencoderKL::module() { return *model_; }

}  // namespace synth
