// torchvision's ResNet (He et al. 2016, "Deep Residual Learning"; torchvision.models.resnet, the
// "v1.5" variant with the stride on the 3x3 conv of a Bottleneck), rebuilt with the same module
// tree so parameter and buffer names equal torchvision's state_dict keys ("layer1.0.conv1.weight",
// "layer2.0.downsample.1.running_mean", "fc.bias"...). width scales every stage's channel count
// (64, 128, 256, 512 at width 1) for tiny CPU runs; width 1 reproduces torchvision exactly
// (ResNet-18: 11,689,512 parameters, ResNet-50: 25,557,032 at 1000 classes).
#pragma once
#include <string>

#include <torch/torch.h>

#include "train/batch_norm.hpp"

namespace synth {

struct ResNetSpec {
  std::string arch = "resnet50";  // resnet18 | resnet34 | resnet50
  double width = 1.0;
  int num_classes = 1000;
};

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetSpec& spec);
  // x: N x 3 x H x W normalized images -> N x num_classes logits. Any H, W >= 1 (adaptive pool).
  torch::Tensor forward(torch::Tensor x);
  const ResNetSpec& spec() const { return spec_; }
  // Synchronized batch norm over `group` in every BN layer (nullptr: local statistics).
  void set_sync_group(Comm* group);

 private:
  ResNetSpec spec_;
  torch::nn::Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ResNet);

// Channel count of a stage at a width multiplier: round(base * width), at least 1.
int64_t scaled_channels(int64_t base, double width);

// Convolution weights to channels-last (NHWC), the layout cuDNN's fp16/bf16 convolutions are
// fastest in on GPUs; the state_dict keys and values are unchanged.
void to_channels_last(ResNet& model);

}  // namespace synth
