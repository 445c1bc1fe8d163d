// stream-eval on JPEG class-folder trees and stream-export, run as a user would: the numbers they
// print equal what this test computes itself from the same checkpoint and the same preprocessing,
// bad input exits 2 with one line naming the path, and the export reads back bit for bit.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "augment/simple_augment.hpp"
#include "support/child_process.hpp"
#include "io/image.hpp"
#include "io/safetensors.hpp"
#include "support/jpeg_tree.hpp"
#include "support/scratch_dir.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"

namespace fs = std::filesystem;

namespace {

using synth::test::check_bad_input;
using synth::test::Result;
using synth::test::run;
using synth::test::slurp;

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> rows;
  std::istringstream s(text);
  for (std::string l; std::getline(s, l);) rows.push_back(nlohmann::json::parse(l));
  return rows;
}

using synth::test::Item;

constexpr int kResize = 32, kCrop = 24;

// A ResNet with random weights and non-trivial batch-norm statistics and affine parameters (so a
// swapped key would show in the logits), saved as a checkpoint of 1234 images. The default is the
// eighth-width ResNet-18 for 8 classes of the stream-eval tests, with class 0 always first (a large
// fc bias).
struct Checkpoint {
  fs::path file;
  synth::ResNet model{nullptr};
  explicit Checkpoint(const fs::path& dir, const synth::ResNetSpec& spec = {"resnet18", 0.125, 8},
                      bool class0_first = true) {
    torch::manual_seed(5);
    model = synth::ResNet(spec);
    {
      torch::NoGradGuard no_grad;
      for (auto& b : model->named_buffers()) {
        if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.2, 0.2);
        if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
        if (b.key().find("num_batches_tracked") != std::string::npos) b.value().fill_(3);
      }
      for (auto& p : model->named_parameters()) {
        if (p.key().find("bn") == std::string::npos && p.key().find("downsample.1") == std::string::npos) continue;
        if (p.key().find(".weight") != std::string::npos) p.value().uniform_(0.5, 1.5);
        if (p.key().find(".bias") != std::string::npos) p.value().uniform_(-0.2, 0.2);
      }
      if (class0_first) model->named_parameters()["fc.bias"][0] += 1000;
    }
    model->eval();
    auto opt = synth::make_sgd(*model, synth::OptimConfig{});
    synth::TrainState st;
    st.arch = spec.arch;
    st.width = spec.width;
    st.num_classes = spec.num_classes;
    st.images_seen = 1234;
    st.step = 10;
    file = synth::save_checkpoint(dir, st, *model, *opt, 1);
  }
};

// Top-1/top-5 hits of the checkpoint's model on items, computed here: the same decoding and
// preprocessing, all images in one batch in the evaluator's order, ranks among the scored logits.
std::pair<int64_t, int64_t> expected_hits(synth::ResNet& model, const std::vector<Item>& items,
                                          const std::vector<int64_t>& scored = {}) {
  const synth::Config defaults;
  const auto classify = [&](const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    return model->forward(x);
  };
  const synth::test::Hits h =
      synth::test::expected_hits(items, classify, kResize, kCrop, defaults.augment.mean, defaults.augment.std, scored);
  return {h.top1, h.top5};
}

// Class file of 8 classes, the trees of tests/eval (full: every class; part: classes 1, 4, 6; v2:
// folders "0".."7" by position in the class file), a checkpoint and a config evaluating all.
struct Fixture {
  synth::test::ScratchDir dir{"eval_cli"};
  std::vector<std::string> ids;
  std::vector<Item> full, part, v2;
  Checkpoint ckpt{dir.path / "checkpoints"};
  fs::path config = dir.path / "eval.toml";
  Fixture() {
    ids = synth::test::write_class_file(dir.path / "classes.tsv", 8);
    for (int c = 0; c < 8; ++c) {
      for (const auto& f : synth::test::write_class_folder(dir.path / "full", ids[size_t(c)], {c, c, (c + 3) % 8}, 10 * c))
        full.push_back({f, c});
      for (const auto& f : synth::test::write_class_folder(dir.path / "v2", std::to_string(c), {c, (c + 2) % 8}, 90 + c))
        v2.push_back({f, c});
    }
    for (int c : {1, 4, 6})
      for (const auto& f : synth::test::write_class_folder(dir.path / "part", ids[size_t(c)], {c, (c + 1) % 8, c}, 200 + c))
        part.push_back({f, c});
    std::ofstream(config) << "[data]\nclass_file = \"" << (dir.path / "classes.tsv").string()
                          << "\"\n[model]\narch = \"resnet18\"\nwidth = 0.125\nnum_classes = 8\n"
                          << "[eval]\nsource = \"none\"\nsets = [\"full=" << path("full") << "\", \"part=" << path("part")
                          << ",classes=present\", \"part-all=" << path("part") << ",classes=partial\", \"v2="
                          << path("v2") << ",layout=index\"]\nresize = " << kResize << "\ncrop = " << kCrop
                          << "\nbatch_size = 64\n";
  }
  std::string path(const std::string& tree) const { return (dir.path / tree).string(); }
  std::vector<std::string> args(std::vector<std::string> more = {}) const {
    std::vector<std::string> a = {"--checkpoint", ckpt.file.string(), "--config", config.string()};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
};

}  // namespace

TEST_CASE("stream-eval: several sets on JPEG trees give exactly the top-1/top-5 computed here") {
  Fixture f;
  const std::vector<int64_t> present = {1, 4, 6};
  const std::map<std::string, std::pair<int64_t, int64_t>> expected = {
      {"full", expected_hits(f.ckpt.model, f.full)},
      {"part", expected_hits(f.ckpt.model, f.part, present)},
      {"part-all", expected_hits(f.ckpt.model, f.part)},
      {"v2", expected_hits(f.ckpt.model, f.v2)}};
  const std::map<std::string, int64_t> images = {
      {"full", 24}, {"part", 9}, {"part-all", 9}, {"v2", 16}};
  // Decoded once up front, or streamed batch by batch by one decoder thread.
  for (const auto& extra : {std::vector<std::string>{}, std::vector<std::string>{"--set", "eval.cache_mb=0", "--set",
                                                                                 "eval.decode_threads=1", "--set",
                                                                                 "eval.batch_size=4"}}) {
    std::vector<std::string> a = f.args(extra);
    a.push_back("--json");
    const Result r = run(STREAM_EVAL_EXE, a);
    INFO("stderr: " << r.err);
    REQUIRE(r.code == 0);
    const auto rows = json_lines(r.out);
    REQUIRE(rows.size() == 4);
    std::vector<std::string> names;
    for (const auto& j : rows) {
      const std::string set = j["set"];
      names.push_back(set);
      INFO("set " << set);
      CHECK(j["images"] == images.at(set));
      CHECK(j["top1_hits"] == expected.at(set).first);
      CHECK(j["top5_hits"] == expected.at(set).second);
      CHECK(j["top1"].get<double>() == doctest::Approx(double(expected.at(set).first) / images.at(set)));
      CHECK(j["images_trained"] == 1234);
      CHECK(j["corrupt"] == 0);
    }
    CHECK(names == std::vector<std::string>{"full", "part", "part-all", "v2"});
    // The fc bias makes class 0 win whenever it is ranked: never right on part, which lacks it;
    // ranked among its 3 classes, every part image is within the top 5.
    CHECK(rows[1]["classes"] == 3);
    CHECK(rows[2]["classes"] == 8);
    CHECK(rows[2]["top1_hits"] == 0);
    CHECK(rows[1]["top5_hits"] == 9);
    CHECK(rows[0]["top1_hits"] == 3);  // exactly the images of class 0
  }

  // The table: a header, then one row per set in order.
  const Result table = run(STREAM_EVAL_EXE, f.args());
  REQUIRE(table.code == 0);
  MESSAGE("stream-eval table:\n" << table.out);
  std::vector<std::string> lines;
  std::istringstream s(table.out);
  for (std::string l; std::getline(s, l);) lines.push_back(l);
  REQUIRE(lines.size() == 6);
  CHECK(lines[0].find("resnet18 width 0.125, 8 classes, trained on 1234 images") != std::string::npos);
  CHECK(lines[1].rfind("set", 0) == 0);
  CHECK(lines[1].find("top-1") != std::string::npos);
  CHECK(lines[2].rfind("full ", 0) == 0);
  CHECK(lines[3].rfind("part ", 0) == 0);
  CHECK(lines[5].rfind("v2 ", 0) == 0);
  char full_top1[32];
  std::snprintf(full_top1, sizeof full_top1, "%.2f%%", 100.0 * expected.at("full").first / 24);
  CHECK(lines[2].find(full_top1) != std::string::npos);

  // --eval replaces the config's sets; eval.limit still applies to them.
  const Result only = run(STREAM_EVAL_EXE, f.args({"--eval", "first=" + f.path("full"), "--eval",
                                                   "idx=" + f.path("v2") + ",layout=index,limit=5", "--json"}));
  INFO("stderr: " << only.err);
  REQUIRE(only.code == 0);
  const auto rows = json_lines(only.out);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["set"] == "first");
  CHECK(rows[0]["top1_hits"] == expected.at("full").first);
  CHECK(rows[1]["set"] == "idx");
  CHECK(rows[1]["images"] == 5);
  CHECK(rows[1]["top1_hits"] == expected_hits(f.ckpt.model, std::vector<Item>(f.v2.begin(), f.v2.begin() + 5)).first);
}

TEST_CASE("stream-eval: class folders and images that do not fit exit 2 naming them, or are counted skips") {
  Fixture f;
  const std::string exe = STREAM_EVAL_EXE;
  // A complete set (the default) without every class.
  check_bad_input(run(exe, f.args({"--eval", "r=" + f.path("part")})), "stream-eval",
                  {(f.dir.path / "part" / "n00000000").string() + ": no folder for class n00000000",
                   "classes=partial or classes=present"});

  // A folder whose id is not in the class file.
  const fs::path unk = f.dir.path / "unk";
  std::vector<Item> known;
  for (int c : {2, 3})
    for (const auto& file : synth::test::write_class_folder(unk, f.ids[size_t(c)], {c, c}, 300 + c)) known.push_back({file, c});
  synth::test::write_class_folder(unk, "n12345678", {0, 1, 2}, 310);
  check_bad_input(run(exe, f.args({"--eval", "unk=" + unk.string() + ",classes=partial"})), "stream-eval",
                  {(unk / "n12345678").string() + ": class folder 'n12345678' is not a class of", "unknown=skip"});
  const Result skipped = run(exe, f.args({"--eval", "unk=" + unk.string() + ",classes=partial,unknown=skip", "--json"}));
  INFO("stderr: " << skipped.err);
  REQUIRE(skipped.code == 0);
  const auto u = nlohmann::json::parse(skipped.out);
  CHECK(u["unknown_folders"] == 1);
  CHECK(u["unknown_images"] == 3);
  CHECK(u["images"] == 4);
  CHECK(u["top1_hits"] == expected_hits(f.ckpt.model, known).first);

  // An unreadable image.
  const fs::path bad = f.dir.path / "bad";
  std::vector<Item> good;
  for (const auto& file : synth::test::write_class_folder(bad, f.ids[4], {4, 5, 4}, 400)) good.push_back({file, 4});
  const std::string broken = (bad / f.ids[4] / "img1.jpg").string();
  good.erase(good.begin() + 1);
  std::ofstream(broken, std::ios::trunc) << "\xff\xd8\xff\xe0 truncated";
  check_bad_input(run(exe, f.args({"--eval", "bad=" + bad.string() + ",classes=partial"})), "stream-eval",
                  {broken + ": corrupt JPEG"});
  for (const std::string cache : {"0", "1024"}) {
    const Result ok = run(exe, f.args({"--eval", "bad=" + bad.string() + ",classes=partial", "--set",
                                       "eval.on_corrupt=skip", "--set", "eval.cache_mb=" + cache, "--json"}));
    INFO("stderr: " << ok.err);
    REQUIRE(ok.code == 0);
    const auto j = nlohmann::json::parse(ok.out);
    CHECK(j["corrupt"] == 1);
    CHECK(j["images"] == 2);
    CHECK(j["corrupt_examples"][0].get<std::string>().rfind(broken, 0) == 0);
    CHECK(j["top1_hits"] == expected_hits(f.ckpt.model, good).first);
  }
  const Result table = run(exe, f.args({"--eval", "bad=" + bad.string() + ",classes=partial", "--set", "eval.on_corrupt=skip"}));
  CHECK(table.out.find("1 unreadable") != std::string::npos);
  CHECK(table.out.find("bad: skipped " + broken) != std::string::npos);

  // Bad --eval text and paths, and no set at all.
  check_bad_input(run(exe, f.args({"--eval", "nonsense"})), "stream-eval",
                  {"--eval \"nonsense\": expected NAME=PATH[,option=value]..."});
  check_bad_input(run(exe, f.args({"--eval", "x=/nonexistent/x"})), "stream-eval",
                  {"--eval: set 'x': '/nonexistent/x' does not exist or is not a directory"});
  check_bad_input(run(exe, f.args({"--eval", "x=" + f.path("full"), "--eval", "x=" + f.path("v2")})), "stream-eval",
                  {"two evaluation sets are named 'x'"});
  check_bad_input(run(exe, f.args({"--set", "eval.sets=[]"})), "stream-eval", {"eval.sets is empty"});
  check_bad_input(run(exe, f.args({"--device", "tpu"})), "stream-eval", {"--device = \"tpu\" is not a device (cpu | cuda = this rank's GPU, LOCAL_RANK | cuda:N = GPU N)"});
}

TEST_CASE("stream-export: the safetensors file is the model's state_dict under torchvision's names, bit for bit") {
  Fixture f;
  const fs::path out_dir = f.dir.path / "export";
  fs::create_directories(out_dir);
  const std::string model_file = (out_dir / "model.safetensors").string(), ref_file = (out_dir / "ref.safetensors").string();
  const Result r = run(STREAM_EXPORT_EXE, {"--checkpoint", f.ckpt.file.string(), "--out", model_file, "--dump-logits",
                                           ref_file, "--images", "3", "--size", "40"});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);

  // The reference: the checkpoint loaded by the training code.
  synth::ResNet loaded(synth::ResNetSpec{"resnet18", 0.125, 8});
  synth::load_checkpoint(f.ckpt.file, *loaded, nullptr, "resnet18", 0.125, 8);
  loaded->eval();
  std::map<std::string, torch::Tensor> expected;
  for (const auto& p : loaded->named_parameters()) expected[p.key()] = p.value();
  for (const auto& b : loaded->named_buffers()) expected[b.key()] = b.value();
  CHECK(expected.size() == 122);  // len(torchvision.models.resnet18().state_dict())

  const synth::SafeTensorsFile file = synth::SafeTensorsFile::open(model_file);
  const std::vector<std::string> names = file.names();
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == expected.size());
  for (const auto& [key, value] : expected) {
    INFO(key);
    REQUIRE(file.contains(key));
    const torch::Tensor got = file.tensor_raw(key);
    CHECK((got.scalar_type() == value.scalar_type()));
    CHECK(torch::equal(got, value));
  }
  for (const char* key : {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.1.running_var",
                          "layer4.1.bn2.num_batches_tracked", "fc.weight", "fc.bias"})
    CHECK(file.contains(key));
  CHECK(file.info("layer4.1.bn2.num_batches_tracked").dtype == "I64");
  CHECK(file.tensor_raw("layer4.1.bn2.num_batches_tracked").item<int64_t>() == 3);
  CHECK(file.metadata()["arch"] == "resnet18");
  CHECK(file.metadata()["num_classes"] == "8");
  CHECK(std::stod(file.metadata()["width"].get<std::string>()) == 0.125);
  // Atomic writes leave no temporary files behind.
  CHECK(std::distance(fs::directory_iterator(out_dir), fs::directory_iterator()) == 2);

  // The logits dump is the model's output on the dumped input.
  const synth::SafeTensorsFile ref = synth::SafeTensorsFile::open(ref_file);
  const torch::Tensor input = ref.tensor("input");
  CHECK((input.sizes() == torch::IntArrayRef({3, 3, 40, 40})));
  torch::NoGradGuard no_grad;
  CHECK(torch::allclose(loaded->forward(input), ref.tensor("logits"), 1e-5, 1e-6));

  // With --config the model settings must agree with the checkpoint.
  const Result same = run(STREAM_EXPORT_EXE, {"--checkpoint", f.ckpt.file.string(), "--config", f.config.string(), "--out",
                                              (out_dir / "again.safetensors").string()});
  CHECK(same.code == 0);
  check_bad_input(run(STREAM_EXPORT_EXE, {"--checkpoint", f.ckpt.file.string(), "--config", f.config.string(), "--set",
                                          "model.width=0.25", "--out", (out_dir / "x.safetensors").string()}),
                  "stream-export", {"the config asks for resnet18 width 0.25"});
  check_bad_input(run(STREAM_EXPORT_EXE, {"--checkpoint", f.ckpt.file.string()}), "stream-export", {"missing --out"});
  check_bad_input(run(STREAM_EXPORT_EXE, {"--checkpoint", f.ckpt.file.string(), "--out", "/nonexistent/dir/m.safetensors"}),
                  "stream-export", {"folder '/nonexistent/dir' does not exist"});
  check_bad_input(run(STREAM_EXPORT_EXE, {"--checkpoint", "/nonexistent/c.pt", "--out", model_file}), "stream-export",
                  {"--checkpoint: '/nonexistent/c.pt' does not exist"});
  CHECK(!fs::exists(out_dir / "x.safetensors"));
}

#ifdef SYNTH_TORCHVISION_PYTHON
// The export's purpose, checked with the reference itself: torchvision's resnet50 (Debian's
// python3-torchvision) takes the file with a strict load_state_dict and, in fp32 eval mode, gives
// the logits LibTorch gave on the dumped input (tools/check_export.py, |difference| <= 1e-3).
TEST_CASE("stream-export: torchvision loads the export of a ResNet-50 and gives the same logits") {
  synth::test::ScratchDir dir("eval_cli_torchvision");
  const Checkpoint ckpt(dir.path / "checkpoints", synth::ResNetSpec{"resnet50", 1.0, 1000}, false);
  const std::string model_file = (dir.path / "model.safetensors").string();
  const std::string ref_file = (dir.path / "ref.safetensors").string();
  const Result exported = run(STREAM_EXPORT_EXE, {"--checkpoint", ckpt.file.string(), "--out", model_file,
                                                  "--dump-logits", ref_file, "--images", "4", "--size", "224"});
  INFO("stream-export stderr: " << exported.err);
  REQUIRE(exported.code == 0);

  const Result same = run(SYNTH_TORCHVISION_PYTHON, {SYNTH_CHECK_EXPORT_PY, model_file, ref_file});
  MESSAGE(same.out);
  INFO("check_export stderr: " << same.err);
  CHECK(same.code == 0);
  CHECK(same.out.find("resnet50 (25557032 parameters), 1000 classes") != std::string::npos);
  CHECK(same.out.find("same top-1 for all 4 images: True") != std::string::npos);

  // The check can fail: logits moved by 0.01 are refused.
  const synth::SafeTensorsFile ref = synth::SafeTensorsFile::open(ref_file);
  const std::string moved_file = (dir.path / "moved.safetensors").string();
  synth::save_safetensors(moved_file, {{"input", ref.tensor("input")}, {"logits", ref.tensor("logits") + 0.01}}, {});
  const Result moved = run(SYNTH_TORCHVISION_PYTHON, {SYNTH_CHECK_EXPORT_PY, model_file, moved_file});
  INFO("check_export stdout: " << moved.out << " stderr: " << moved.err);
  CHECK(moved.code == 1);
}
#endif
