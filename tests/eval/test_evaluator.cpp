// Top-1/top-5 counting by hand, and the evaluator over real Fashion-MNIST test images with
// classifiers whose accuracy is known from the labels alone.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "core/error.hpp"
#include "eval/evaluator.hpp"

TEST_CASE("topk_correct counts top-1 and top-5 hits") {
  // 3 samples x 6 classes; ranks of the true class: 1st, 3rd, 6th.
  const torch::Tensor logits = torch::tensor({0.9f, 0.1f, 0.0f, 0.0f, 0.0f, 0.0f,   //
                                              0.5f, 0.4f, 0.3f, 0.2f, 0.1f, 0.0f,   //
                                              0.6f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f})
                                   .view({3, 6});
  const auto hits = synth::topk_correct(logits, torch::tensor({0, 2, 5}, torch::kInt64));
  CHECK(hits.first == 1);
  CHECK(hits.second == 2);
  // Fewer than 5 classes: top-5 is every prediction.
  CHECK(synth::topk_correct(torch::rand({4, 3}), torch::tensor({0, 1, 2, 0}, torch::kInt64)).second == 4);
}

TEST_CASE("evaluator on Fashion-MNIST t10k: a constant classifier scores the label frequencies") {
  synth::Config c;
  c.eval.source = "fmnist";
  c.eval.path = "/usr/share/datasets/fashion-mnist";
  c.eval.limit = 1000;
  c.eval.batch_size = 300;  // uneven last batch
  c.eval.resize = c.eval.crop = 28;
  c.model.num_classes = 10;
  synth::Evaluator eval(c);
  CHECK(eval.size() == 1000);
  const auto data = synth::open_eval_dataset(c);
  int64_t label3 = 0, top5 = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    label3 += data->label(i) == 3;
    top5 += data->label(i) >= 3 && data->label(i) <= 7;
  }
  int64_t seen = 0;
  const auto r = eval([&](const torch::Tensor& x) {
    CHECK(x.size(1) == 3);
    CHECK(x.size(2) == 28);
    seen += x.size(0);
    // Scores ranking 3 > 4 > 5 > 6 > 7 > others.
    torch::Tensor s = torch::zeros({x.size(0), 10});
    for (int k = 3; k <= 7; ++k) s.select(1, k).fill_(10.0 - k);
    return s;
  });
  CHECK(seen == 1000);
  REQUIRE(r.size() == 1);
  CHECK(r[0].set == "fmnist-t10k");
  CHECK(r[0].images == 1000);
  CHECK(r[0].top1 == doctest::Approx(label3 / 1000.0));
  CHECK(r[0].top5 == doctest::Approx(top5 / 1000.0));
  CHECK(label3 > 50);  // the check above is not vacuous

  c.model.num_classes = 4;  // labels up to 9 do not fit
  CHECK_THROWS_WITH_AS(synth::Evaluator{c}, doctest::Contains("model.num_classes = 4"), synth::InputError);
  c.eval.source = "none";
  CHECK_THROWS_AS(synth::Evaluator{c}, synth::InputError);
}
