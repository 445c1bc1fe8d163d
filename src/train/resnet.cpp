#include "train/resnet.hpp"

#include <cmath>
#include <memory>

#include "core/error.hpp"

namespace synth {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

// conv1x1 + BN projection of the identity path when the shape changes (torchvision's
// `downsample`, Sequential so its keys are downsample.0.* and downsample.1.*).
nn::Sequential projection(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(conv(in, out, 1, stride), BatchNorm2d(out));
}

// Two 3x3 convs (ResNet-18/34), expansion 1.
struct BasicBlockImpl : nn::Module {
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", conv(in, planes, 3, stride));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, 1));
    bn2 = register_module("bn2", BatchNorm2d(planes));
    if (stride != 1 || in != planes * kExpansion)
      downsample = register_module("downsample", projection(in, planes * kExpansion, stride));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = bn2(conv2(out));
    out += downsample ? downsample->forward(x) : x;
    return torch::relu(out);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// 1x1 reduce, 3x3 (carrying the stride: torchvision's "ResNet v1.5"), 1x1 expand; expansion 4.
struct BottleneckImpl : nn::Module {
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", conv(in, planes, 1, 1));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride));
    bn2 = register_module("bn2", BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, planes * kExpansion, 1, 1));
    bn3 = register_module("bn3", BatchNorm2d(planes * kExpansion));
    if (stride != 1 || in != planes * kExpansion)
      downsample = register_module("downsample", projection(in, planes * kExpansion, stride));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = torch::relu(bn2(conv2(out)));
    out = bn3(conv3(out));
    out += downsample ? downsample->forward(x) : x;
    return torch::relu(out);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

template <typename Block>
nn::Sequential make_layer(int64_t& in, int64_t planes, int blocks, int64_t stride) {
  nn::Sequential layer;
  layer->push_back(Block(in, planes, stride));
  in = planes * Block::Impl::kExpansion;
  for (int i = 1; i < blocks; ++i) layer->push_back(Block(in, planes, 1));
  return layer;
}

}  // namespace

int64_t scaled_channels(int64_t base, double width) {
  return std::max<int64_t>(1, std::llround(double(base) * width));
}

ResNetImpl::ResNetImpl(const ResNetSpec& spec) : spec_(spec) {
  if (!(spec.width > 0)) throw InputError("model.width must be > 0 (got " + std::to_string(spec.width) + ")");
  if (spec.num_classes < 1) throw InputError("model.num_classes must be >= 1");
  int blocks[4];
  bool bottleneck = false;
  if (spec.arch == "resnet18") {
    blocks[0] = 2, blocks[1] = 2, blocks[2] = 2, blocks[3] = 2;
  } else if (spec.arch == "resnet34") {
    blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3;
  } else if (spec.arch == "resnet50") {
    blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3;
    bottleneck = true;
  } else {
    throw InputError("model.arch: unknown ResNet '" + spec.arch + "' (resnet18, resnet34, resnet50)");
  }
  const int64_t c[4] = {scaled_channels(64, spec.width), scaled_channels(128, spec.width),
                        scaled_channels(256, spec.width), scaled_channels(512, spec.width)};
  int64_t in = c[0];
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(3, in, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", BatchNorm2d(in));
  nn::Sequential* layers[4] = {&layer1, &layer2, &layer3, &layer4};
  for (int i = 0; i < 4; ++i) {
    const int64_t stride = i == 0 ? 1 : 2;
    *layers[i] = bottleneck ? make_layer<Bottleneck>(in, c[i], blocks[i], stride)
                            : make_layer<BasicBlock>(in, c[i], blocks[i], stride);
    register_module("layer" + std::to_string(i + 1), *layers[i]);
  }
  fc = register_module("fc", nn::Linear(in, spec.num_classes));

  // torchvision's initialization: Kaiming-normal (fan_out, ReLU) convs, BN weight 1 / bias 0;
  // the Linear layer keeps its default (the same as PyTorch's nn.Linear).
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* cv = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(cv->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = m->as<BatchNorm2dImpl>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
}

void ResNetImpl::set_sync_group(Comm* group) {
  for (auto& m : modules(/*include_self=*/false))
    if (auto* bn = m->as<BatchNorm2dImpl>()) bn->set_group(group);
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  x = torch::relu(bn1(conv1(x)));
  x = torch::max_pool2d(x, 3, 2, 1);
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return fc(x);
}

void to_channels_last(ResNet& model) {
  torch::NoGradGuard no_grad;
  for (torch::Tensor p : model->parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace synth
