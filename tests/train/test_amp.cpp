// Mixed precision: autocast really computes in the low precision inside its scope and only there;
// the loss scaler's overflow handling follows GradScaler's policy; a bf16 run on the CPU learns.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/real_source.hpp"
#include "eval/evaluator.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_fmnist.hpp"
#include "train/amp.hpp"
#include "train/trainer.hpp"

TEST_CASE("amp: precision names") {
  CHECK(synth::parse_precision("fp32") == synth::Precision::kFp32);
  CHECK(synth::parse_precision("fp16") == synth::Precision::kFp16);
  CHECK(synth::parse_precision("bf16") == synth::Precision::kBf16);
  CHECK_THROWS_AS(synth::parse_precision("fp8"), synth::InputError);
}

TEST_CASE("amp: a bf16 autocast scope runs convolutions in bf16 and restores fp32 after") {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  {
    const synth::AutocastScope scope(synth::Precision::kBf16, torch::kCPU);
    const torch::Tensor y = conv(x);
    CHECK((y.scalar_type() == torch::kBFloat16));
    // The weights themselves stay fp32 (autocast casts a copy per scope).
    CHECK((conv->weight.scalar_type() == torch::kFloat32));
  }
  CHECK((conv(x).scalar_type() == torch::kFloat32));
  {
    const synth::AutocastScope fp32(synth::Precision::kFp32, torch::kCPU);
    CHECK((conv(x).scalar_type() == torch::kFloat32));
  }
}

TEST_CASE("amp: the loss scaler scales, unscales, skips overflowing steps and grows after good ones") {
  synth::LossScaler scaler(true, 1024.0, 2.0, 0.5, 3);
  torch::Tensor w = torch::ones({3}, torch::requires_grad());
  scaler.scale((w * 2).sum()).backward();
  CHECK(w.grad()[0].item<double>() == 2048.0);
  CHECK(scaler.unscale({w}));
  CHECK(w.grad()[0].item<double>() == 2.0);
  scaler.update(true);
  scaler.update(true);
  CHECK(scaler.value() == 1024.0);
  scaler.update(true);  // the third good step in a row
  CHECK(scaler.value() == 2048.0);
  CHECK(scaler.good_steps() == 0);

  w.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  CHECK_FALSE(scaler.unscale({w}));
  scaler.update(false);
  CHECK(scaler.value() == 1024.0);
  w.mutable_grad()[1] = std::nan("");
  CHECK_FALSE(scaler.unscale({w}));

  synth::LossScaler off(false);
  CHECK(off.value() == 1.0);
  torch::Tensor v = torch::ones({2}, torch::requires_grad());
  off.scale(v.sum()).backward();
  CHECK(v.grad()[0].item<double>() == 1.0);
  off.update(false);
  CHECK(off.value() == 1.0);
  CHECK_THROWS_AS(scaler.restore(0.0, 0), synth::InputError);
}

TEST_CASE("amp: a bf16 run on the CPU learns Fashion-MNIST (real test images)") {
  synth::Config c = synth::test::tiny_fmnist_config(3840, 128);
  c.data.limit = 5000;
  c.eval.limit = 1000;
  c.train.precision = "bf16";
  const auto data = synth::open_train_dataset(c);
  synth::test::ScratchDir dir;
  const synth::Evaluator eval(c);
  synth::TrainHooks hooks;
  hooks.evaluate = [&](const synth::Classifier& classify) { return eval(classify); };
  const synth::TrainSummary s = synth::run_training(c, synth::real_image_source(c, *data), dir.path.string(), false, hooks);
  CHECK(s.exactly_once);
  CHECK(s.steps == 30);
  REQUIRE(s.last_eval.size() == 1);
  MESSAGE("bf16 autocast, 3,840 images: top-1 " << 100 * s.last_eval[0].top1 << "% on 1,000 test images (chance 10%)");
  CHECK(s.last_eval[0].top1 > 0.4);  // measured 53.5%; the untrained network is below 30%
}

TEST_CASE("amp: fp16 on the CPU is refused up front, naming the key") {
  synth::Config c;
  c.source_file = "run.toml";
  c.train.precision = "fp16";
  c.train.device = "cpu";
  CHECK_THROWS_WITH_AS(synth::check_trainable(c), doctest::Contains("run.toml: train.precision = \"fp16\" needs train.device"),
                       synth::InputError);
  c.train.precision = "bf16";
  CHECK_NOTHROW(synth::check_trainable(c));
}
