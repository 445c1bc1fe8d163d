// Checkpoints restore a run exactly, keep the newest N, and refuse damaged files with an error
// naming them - and a crash mid-write (a leftover temp file) never hides the previous checkpoint.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "scratch_dir.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"

namespace fs = std::filesystem;
using synth::ResNet;
using synth::ResNetSpec;

namespace {

void train_steps(ResNet& m, torch::optim::Optimizer& opt, int steps, int seed) {
  torch::manual_seed(seed);
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    const torch::Tensor x = torch::randn({4, 3, 32, 32});
    torch::nn::functional::cross_entropy(m->forward(x), torch::tensor({0, 1, 2, 0}, torch::kInt64)).backward();
    opt.step();
  }
}

bool same_state(ResNet& a, ResNet& b) {
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  auto bb = b->named_buffers();
  for (const auto& p : a->named_buffers())
    if (!torch::equal(p.value(), bb[p.key()])) return false;
  return true;
}

synth::TrainState state_at(uint64_t images) {
  synth::TrainState s;
  s.step = int64_t(images / 4);
  s.images_seen = images;
  s.seed = 7;
  s.ledger = "low=" + std::to_string(images) + ";dup=0;sparse=";
  s.arch = "resnet18";
  s.width = 0.125;
  s.num_classes = 3;
  return s;
}

}  // namespace

TEST_CASE("a checkpoint restores model, BN statistics, momentum and the stream position exactly") {
  synth::test::ScratchDir dir;
  const ResNetSpec spec{"resnet18", 0.125, 3};
  synth::OptimConfig oc;
  torch::manual_seed(1);
  ResNet a(spec);
  auto opt_a = synth::make_sgd(*a, oc);
  train_steps(a, *opt_a, 3, 10);
  const fs::path file = synth::save_checkpoint(dir.path, state_at(12), *a, *opt_a, 2);
  CHECK(file.filename() == "ckpt-000000000012.pt");

  torch::manual_seed(2);
  ResNet b(spec);
  auto opt_b = synth::make_sgd(*b, oc);
  CHECK(!same_state(a, b));
  const synth::TrainState s = synth::load_checkpoint(file, *b, opt_b.get(), "resnet18", 0.125, 3);
  CHECK(s.step == 3);
  CHECK(s.images_seen == 12);
  CHECK(s.seed == 7);
  CHECK(s.ledger == "low=12;dup=0;sparse=");
  CHECK(same_state(a, b));
  // Momentum buffers came back too: the next steps agree bit for bit.
  train_steps(a, *opt_a, 2, 11);
  train_steps(b, *opt_b, 2, 11);
  CHECK(same_state(a, b));
}

TEST_CASE("only the newest keep_checkpoints files stay; temp files are never taken for checkpoints") {
  synth::test::ScratchDir dir;
  synth::OptimConfig oc;
  ResNet m(ResNetSpec{"resnet18", 0.125, 3});
  auto opt = synth::make_sgd(*m, oc);
  for (uint64_t images : {4, 8, 12, 16}) synth::save_checkpoint(dir.path, state_at(images), *m, *opt, 2);
  auto all = synth::list_checkpoints(dir.path);
  REQUIRE(all.size() == 2);
  CHECK(all[0].filename() == "ckpt-000000000012.pt");
  CHECK(all[1].filename() == "ckpt-000000000016.pt");
  // A crash mid-write leaves "<name>.tmp<pid>": ignored, and the previous file loads.
  std::ofstream(dir.path / "ckpt-000000000020.pt.tmp123") << "half written";
  all = synth::list_checkpoints(dir.path);
  REQUIRE(all.size() == 2);
  CHECK(synth::read_checkpoint_state(all.back()).images_seen == 16);
}

TEST_CASE("truncated, corrupt, foreign or mismatched checkpoints are InputErrors naming the file") {
  synth::test::ScratchDir dir;
  synth::OptimConfig oc;
  ResNet m(ResNetSpec{"resnet18", 0.125, 3});
  auto opt = synth::make_sgd(*m, oc);
  const fs::path good = synth::save_checkpoint(dir.path, state_at(8), *m, *opt, 5);
  const auto size = fs::file_size(good);

  const fs::path truncated = dir.path / "truncated.pt";
  fs::copy_file(good, truncated);
  fs::resize_file(truncated, size / 2);
  const fs::path garbage = dir.path / "garbage.pt";
  std::ofstream(garbage) << "not a checkpoint at all";
  const fs::path empty = dir.path / "empty.pt";
  std::ofstream(empty).flush();
  const fs::path foreign = dir.path / "foreign.pt";
  {
    torch::serialize::OutputArchive a;
    a.write("weights", torch::ones({3}));
    a.save_to(foreign.string());
  }
  for (const fs::path& bad : {truncated, garbage, empty, foreign, dir.path / "missing.pt"}) {
    CAPTURE(bad);
    bool thrown = false;
    try {
      synth::read_checkpoint_state(bad);
    } catch (const synth::InputError& e) {
      thrown = true;
      CHECK(std::string(e.what()).find(bad.string()) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
    CHECK(thrown);
  }
  ResNet other(ResNetSpec{"resnet18", 0.25, 3});
  CHECK_THROWS_WITH_AS(synth::load_checkpoint(good, *other, nullptr, "resnet18", 0.25, 3),
                       doctest::Contains("the config asks for resnet18 width 0.25"), synth::InputError);
  // The good file is untouched by all of this.
  CHECK(synth::read_checkpoint_state(good).images_seen == 8);
}
