// The ResNet must be torchvision's: same parameter count, same state_dict keys (so weights map
// one to one), same output shape; the width multiplier scales channels only.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "core/error.hpp"
#include "train/resnet.hpp"

using synth::ResNet;
using synth::ResNetSpec;

namespace {

int64_t count_parameters(ResNet& m) {
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  return n;
}

std::set<std::string> state_keys(ResNet& m) {
  std::set<std::string> keys;
  for (const auto& p : m->named_parameters()) keys.insert(p.key());
  for (const auto& b : m->named_buffers()) keys.insert(b.key());
  return keys;
}

}  // namespace

TEST_CASE("resnet18 and resnet50 have torchvision's parameter counts and state_dict keys") {
  ResNet r18(ResNetSpec{"resnet18", 1.0, 1000});
  ResNet r50(ResNetSpec{"resnet50", 1.0, 1000});
  CHECK(count_parameters(r18) == 11689512);
  CHECK(count_parameters(r50) == 25557032);
  CHECK(r18->parameters().size() == 62);
  CHECK(r50->parameters().size() == 161);
  // torchvision's state_dict: parameters plus BN running_mean/var/num_batches_tracked.
  const auto k18 = state_keys(r18), k50 = state_keys(r50);
  CHECK(k18.size() == 122);
  CHECK(k50.size() == 320);
  for (const char* key : {"conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.1.conv2.weight",
                          "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias",
                          "fc.weight", "fc.bias"})
    CHECK_MESSAGE(k18.count(key) == 1, key);
  for (const char* key : {"layer1.0.downsample.0.weight", "layer3.5.conv3.weight", "layer4.2.bn3.running_mean"})
    CHECK_MESSAGE(k50.count(key) == 1, key);
  CHECK(k18.count("layer1.0.downsample.0.weight") == 0);  // BasicBlock keeps the identity at stage 1
  // Bottleneck v1.5: the stride sits on the 3x3 conv.
  for (const auto& m : r50->named_modules())
    if (m.key() == "layer2.0.conv2") CHECK(m.value()->as<torch::nn::Conv2d>()->options.stride()->at(0) == 2);
}

TEST_CASE("width scales channels; any input size maps to logits") {
  ResNet tiny(ResNetSpec{"resnet18", 0.25, 10});
  CHECK(synth::scaled_channels(64, 0.25) == 16);
  CHECK(synth::scaled_channels(64, 0.001) == 1);
  const auto params = tiny->named_parameters();
  CHECK(params["conv1.weight"].sizes() == torch::IntArrayRef({16, 3, 7, 7}));
  CHECK(params["fc.weight"].sizes() == torch::IntArrayRef({10, 128}));
  tiny->eval();
  torch::NoGradGuard no_grad;
  CHECK(tiny->forward(torch::randn({2, 3, 28, 28})).sizes() == torch::IntArrayRef({2, 10}));
  CHECK(tiny->forward(torch::randn({1, 3, 96, 64})).sizes() == torch::IntArrayRef({1, 10}));
  ResNet r34(ResNetSpec{"resnet34", 0.125, 7});
  r34->eval();
  CHECK(r34->forward(torch::randn({1, 3, 64, 64})).sizes() == torch::IntArrayRef({1, 7}));
}

TEST_CASE("initialization follows torchvision: Kaiming fan-out convs, BN 1/0") {
  torch::manual_seed(0);
  ResNet m(ResNetSpec{"resnet50", 1.0, 1000});
  const auto p = m->named_parameters();
  const torch::Tensor w = p["layer3.0.conv2.weight"];  // 256 out, 3x3: std = sqrt(2 / (256 * 9))
  CHECK(w.std().item<double>() == doctest::Approx(std::sqrt(2.0 / (256 * 9))).epsilon(0.02));
  CHECK(w.mean().item<double>() == doctest::Approx(0).epsilon(1e-3));
  CHECK(torch::equal(p["layer3.0.bn2.weight"], torch::ones({256})));
  CHECK(torch::equal(p["layer3.0.bn2.bias"], torch::zeros({256})));
}

TEST_CASE("an unknown architecture is an InputError") {
  CHECK_THROWS_AS(ResNet(ResNetSpec{"resnet101", 1.0, 10}), synth::InputError);
  CHECK_THROWS_AS(ResNet(ResNetSpec{"resnet18", 0.0, 10}), synth::InputError);
}
