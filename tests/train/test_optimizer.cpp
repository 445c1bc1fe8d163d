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
  const torch::Tensor w0 = params["conv1.weight"].detach().clone(), b0 = params["fc.bias"].detach().clone();
  for (int step = 0; step < 2; ++step) {
    sgd->zero_grad();
    (m->forward(torch::ones({2, 3, 32, 32})).sum()).backward();
    if (step == 0) {
      const torch::Tensor gw = params["conv1.weight"].grad().clone(), gb = params["fc.bias"].grad().clone();
      sgd->step();
      // First step: buffer = g + wd * p (decayed) or g; p -= lr * buffer.
      CHECK(torch::allclose(params["conv1.weight"], w0 - 0.1 * (gw + 0.5 * w0), 1e-5, 1e-7));
      CHECK(torch::allclose(params["fc.bias"], b0 - 0.1 * gb, 1e-5, 1e-7));
    } else {
      sgd->step();
    }
  }
  o.decay_bn_and_bias = true;
  CHECK(synth::make_sgd(*m, o)->param_groups().size() == 1);
}
