// The learning-rate schedule and SGD's parameter groups, against hand-computed values.
#include <doctest/doctest.h>

#include <cmath>

#include "train/optimizer.hpp"
#include "train/resnet.hpp"

TEST_CASE("warm-up is linear to the batch-scaled peak, then cosine to the floor") {
  synth::OptimConfig o;
  o.lr = 0.1;
  o.warmup_fraction = 0.1;
  o.final_lr_fraction = 0.01;
  const auto s = synth::LrSchedule::from_config(o, 512, 100);  // peak = 0.1 * 512 / 256
  CHECK(s.peak == doctest::Approx(0.2));
  CHECK(s.warmup_steps == 10);
  CHECK(s.at(0) == doctest::Approx(0.02));
  CHECK(s.at(4) == doctest::Approx(0.1));
  CHECK(s.at(9) == doctest::Approx(0.2));
  CHECK(s.at(10) == doctest::Approx(0.2));  // first cosine step: the peak
  CHECK(s.at(99) == doctest::Approx(0.002));  // last step: the floor
  const double mid = 0.002 + (0.2 - 0.002) * 0.5 * (1 + std::cos(M_PI * 45.0 / 89.0));
  CHECK(s.at(55) == doctest::Approx(mid));
  for (int i = 11; i < 100; ++i) CHECK(s.at(i) <= s.at(i - 1));
  o.warmup_fraction = 0;
  CHECK(synth::LrSchedule::from_config(o, 256, 10).at(0) == doctest::Approx(0.1));
}

TEST_CASE("weight decay skips BatchNorm and biases unless asked; one SGD step is torch.optim.SGD's") {
  synth::ResNet m(synth::ResNetSpec{"resnet18", 0.125, 4});
  synth::OptimConfig o;
  o.momentum = 0.9;
  o.weight_decay = 0.5;
  auto sgd = synth::make_sgd(*m, o);
  REQUIRE(sgd->param_groups().size() == 2);
  const auto& g0 = sgd->param_groups()[0];
  const auto& g1 = sgd->param_groups()[1];
  for (const auto& p : g0.params()) CHECK(p.dim() > 1);
  for (const auto& p : g1.params()) CHECK(p.dim() == 1);
  CHECK(g0.params().size() + g1.params().size() == m->parameters().size());
  CHECK(static_cast<const torch::optim::SGDOptions&>(g1.options()).weight_decay() == 0.0);

  synth::set_lr(*sgd, 0.1);
  auto params = m->named_parameters();
  // torch.optim.SGD's update, written out: d = g + wd * p (decayed group) or g; the first step
  // starts the buffer at d, later ones take buf = momentum * buf + d; then p -= lr * buf.
  torch::Tensor w = params["conv1.weight"].detach().clone(), b = params["fc.bias"].detach().clone();
  torch::Tensor buf_w, buf_b;
  for (int step = 0; step < 2; ++step) {
    CAPTURE(step);
    sgd->zero_grad();
    (m->forward(torch::ones({2, 3, 32, 32})).sum()).backward();
    const torch::Tensor dw = params["conv1.weight"].grad().clone() + 0.5 * w, db = params["fc.bias"].grad().clone();
    buf_w = step == 0 ? dw : 0.9 * buf_w + dw;
    buf_b = step == 0 ? db : 0.9 * buf_b + db;
    sgd->step();
    w = w - 0.1 * buf_w;
    b = b - 0.1 * buf_b;
    CHECK(torch::allclose(params["conv1.weight"], w, 1e-5, 1e-7));
    CHECK(torch::allclose(params["fc.bias"], b, 1e-5, 1e-7));
  }
  o.decay_bn_and_bias = true;
  CHECK(synth::make_sgd(*m, o)->param_groups().size() == 1);
}

TEST_CASE("ForeachSgd (make_sgd's) steps as torch::optim::SGD does, buffers started late included") {
  for (const bool nesterov : {false, true}) {
    CAPTURE(nesterov);
    const synth::ResNetSpec spec{"resnet18", 0.125, 4};
    torch::manual_seed(1);
    synth::ResNet a(spec), b(spec);
    {
      torch::NoGradGuard no_grad;
      for (const auto& p : b->named_parameters()) p.value().copy_(a->named_parameters()[p.key()]);
    }
    const auto options = torch::optim::SGDOptions(0.05).momentum(0.9).dampening(nesterov ? 0.0 : 0.1).nesterov(nesterov);
    // make_sgd's two groups: decayed weights, and 1-d parameters without decay.
    const auto groups = [&](synth::ResNet& m) {
      std::vector<torch::Tensor> decay, plain;
      for (const torch::Tensor& p : m->parameters()) (p.dim() > 1 ? decay : plain).push_back(p);
      std::vector<torch::optim::OptimizerParamGroup> g;
      g.emplace_back(decay, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(options).weight_decay(0.3)));
      g.emplace_back(plain, std::make_unique<torch::optim::SGDOptions>(options));
      return g;
    };
    torch::optim::SGD reference(groups(a), options);
    synth::ForeachSgd fused(groups(b), options);
    const torch::Tensor x = torch::randn({3, 3, 32, 32});
    for (int step = 0; step < 3; ++step) {
      CAPTURE(step);
      for (auto [m, opt] : {std::make_pair(&a, static_cast<torch::optim::Optimizer*>(&reference)),
                            std::make_pair(&b, static_cast<torch::optim::Optimizer*>(&fused))}) {
        opt->zero_grad();
        (*m)->forward(x).pow(2).mean().backward();
        // No gradient for these two at step 0: their momentum buffers start at step 1, next to
        // buffers that already exist in the same group.
        if (step == 0)
          for (const char* key : {"fc.bias", "layer1.0.conv1.weight"}) (*m)->named_parameters()[key].mutable_grad() = torch::Tensor();
        opt->step();
      }
      for (const auto& p : a->named_parameters()) {
        CAPTURE(p.key());
        CHECK(torch::allclose(b->named_parameters()[p.key()], p.value(), 1e-6, 1e-7));
      }
    }
    CHECK(reference.state().size() == fused.state().size());
  }
  synth::ResNet m(synth::ResNetSpec{"resnet18", 0.125, 4});
  CHECK(dynamic_cast<synth::ForeachSgd*>(synth::make_sgd(*m, synth::OptimConfig{}).get()) != nullptr);
}
