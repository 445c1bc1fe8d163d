#include "diffusion/blocks.hpp"

#include "core/error.hpp"

namespace synth {

namespace F = torch::nn::functional;

namespace {
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = -1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad < 0 ? k / 2 : pad));
}
torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels, double eps) {
  if (groups <= 0 || channels % groups != 0)
    throw InputError("GroupNorm: " + std::to_string(channels) + " channels are not divisible into " +
                     std::to_string(groups) + " groups");
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps));
}
}  // namespace

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetBlock2DOptions& o) : options_(o) {
  norm1 = register_module("norm1", group_norm(o.groups, o.in_channels, o.eps));
  conv1 = register_module("conv1", conv(o.in_channels, o.out_channels, 3));
  if (o.temb_channels > 0) time_emb_proj = register_module("time_emb_proj", torch::nn::Linear(o.temb_channels, o.out_channels));
  norm2 = register_module("norm2", group_norm(o.groups, o.out_channels, o.eps));
  conv2 = register_module("conv2", conv(o.out_channels, o.out_channels, 3));
  if (o.in_channels != o.out_channels) conv_shortcut = register_module("conv_shortcut", conv(o.in_channels, o.out_channels, 1, 1, 0));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  auto h = conv1(torch::silu(norm1(x)));
  if (time_emb_proj) {
    if (!temb.defined()) throw Error("ResnetBlock2D: time embedding required");
    h = h + time_emb_proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);
  }
  // Dropout sits here in training; synthstream only samples.
  h = conv2(torch::silu(norm2(h)));
  auto skip = conv_shortcut ? conv_shortcut(x) : x;
  auto out = skip + h;
  return options_.output_scale_factor == 1.0 ? out : out / options_.output_scale_factor;
}

Upsample2DImpl::Upsample2DImpl(int64_t channels, int64_t out_channels) {
  conv = register_module("conv", synth::conv(channels, out_channels, 3));
}

torch::Tensor Upsample2DImpl::forward(const torch::Tensor& x, std::optional<std::vector<int64_t>> size) {
  auto opts = F::InterpolateFuncOptions().mode(torch::kNearest);
  if (size)
    opts.size(*size);
  else
    opts.scale_factor(std::vector<double>{2.0, 2.0});
  return conv(F::interpolate(x, opts));
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t out_channels, int64_t padding) : padding_(padding) {
  conv = register_module("conv", synth::conv(channels, out_channels, 3, 2, padding));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor& x) {
  if (padding_ == 0) return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kConstant).value(0)));
  return conv(x);
}

VaeAttentionImpl::VaeAttentionImpl(int64_t channels, int64_t groups, double eps, int64_t heads)
    : channels_(channels), heads_(heads) {
  if (heads <= 0 || channels % heads != 0)
    throw InputError("VaeAttention: " + std::to_string(heads) + " heads do not divide " + std::to_string(channels) + " channels");
  group_norm = register_module("group_norm", synth::group_norm(groups, channels, eps));
  to_q = register_module("to_q", torch::nn::Linear(channels, channels));
  to_k = register_module("to_k", torch::nn::Linear(channels, channels));
  to_v = register_module("to_v", torch::nn::Linear(channels, channels));
  out_proj_ = torch::nn::Linear(channels, channels);
  to_out = register_module("to_out", torch::nn::ModuleList(out_proj_));
}

torch::Tensor VaeAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), d = c / heads_;
  auto seq = group_norm(x).view({b, c, h * w}).transpose(1, 2);  // [B, HW, C]
  auto split = [&](const torch::Tensor& t) { return t.view({b, h * w, heads_, d}).transpose(1, 2); };
  auto o = at::scaled_dot_product_attention(split(to_q(seq)), split(to_k(seq)), split(to_v(seq)));
  o = out_proj_(o.transpose(1, 2).reshape({b, h * w, c}));
  return x + o.transpose(1, 2).reshape({b, c, h, w});
}

}  // namespace synth
