// stream-sd-train (issue 16): the weights of models/fmnist-sd are reproducible. A few training steps
// on real Fashion-MNIST images with the model's own architecture lower both losses, and two runs
// with one seed write identical weight files; bad input exits 2 with one line.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/child_process.hpp"
#include "support/tiny_fmnist.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kModel = SYNTH_SOURCE_DIR "/models/fmnist-sd";
const std::string kSmoke = SYNTH_SOURCE_DIR "/configs/smoke.toml";

using synth::test::fmnist_dir;  // SYNTH_FMNIST_DIR or Debian's dataset-fashion-mnist

// The architecture of models/fmnist-sd without its weights.
void copy_architecture(const fs::path& to) {
  for (const char* f : {"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
                        "text_encoder/config.json", "unet/config.json", "vae/config.json"}) {
    fs::create_directories((to / f).parent_path());
    fs::copy_file(fs::path(kModel) / f, to / f);
  }
}

synth::test::Result train(const fs::path& model, const std::string& seed) {
  return synth::test::run(STREAM_SD_TRAIN_EXE, {"--config", kSmoke, "--model", model.string(), "--data", fmnist_dir(),
                                                "--limit", "512", "--vae-steps", "30", "--vae-batch", "16", "--unet-steps",
                                                "40", "--unet-batch", "16", "--threads", "1", "--seed", seed},
                          SYNTH_SOURCE_DIR, 600);
}

// Mean of `key` over the steps [from, to) of `stage` in <model>/train_log.jsonl.
double mean_loss(const fs::path& model, const std::string& stage, const std::string& key, int from, int to) {
  std::istringstream lines(synth::test::slurp(model / "train_log.jsonl"));
  double sum = 0;
  int n = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    const int step = j["step"];
    if (j["stage"] == stage && step > from && step <= to) {
      sum += j[key].get<double>();
      ++n;
    }
  }
  REQUIRE(n == to - from);
  return sum / n;
}

}  // namespace

TEST_CASE("stream-sd-train: a few steps lower both losses; one seed gives identical weights") {
  const synth::test::ScratchDir dir("sd_train");
  copy_architecture(dir.path / "a");
  copy_architecture(dir.path / "b");
  const auto a = train(dir.path / "a", "3");
  INFO("stdout: " << a.out << "\nstderr: " << a.err);
  REQUIRE(a.code == 0);
  CHECK(a.out.find("ETA") != std::string::npos);  // progress lines
  // The autoencoder's L1 error and the U-Net's noise-prediction error both fall.
  CHECK(mean_loss(dir.path / "a", "vae", "l1", 25, 30) < 0.7 * mean_loss(dir.path / "a", "vae", "l1", 0, 5));
  CHECK(mean_loss(dir.path / "a", "unet", "loss", 30, 40) < 0.9 * mean_loss(dir.path / "a", "unet", "loss", 0, 10));

  REQUIRE(train(dir.path / "b", "3").code == 0);
  for (const char* f : {"vae/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors",
                        "text_encoder/model.safetensors", "vae/config.json"}) {
    INFO(f);
    const std::string wa = synth::test::slurp(dir.path / "a" / f), wb = synth::test::slurp(dir.path / "b" / f);
    CHECK(wa.size() > 500);  // config.json ~700 bytes, weights MBs
    CHECK(wa == wb);
  }
}

TEST_CASE("stream-sd-train: bad input exits 2 with one line") {
  const synth::test::ScratchDir dir("sd_train_bad");
  synth::test::check_bad_input(synth::test::run(STREAM_SD_TRAIN_EXE, {"--config", kSmoke, "--model", dir.file("none")}, SYNTH_SOURCE_DIR),
                               "stream-sd-train", {"--model", "none"});
  // A folder without the architecture's config files.
  fs::create_directories(dir.path / "empty");
  synth::test::check_bad_input(
      synth::test::run(STREAM_SD_TRAIN_EXE, {"--config", kSmoke, "--model", dir.file("empty"), "--limit", "16"}, SYNTH_SOURCE_DIR),
      "stream-sd-train", {"model_index.json"});
  copy_architecture(dir.path / "m");
  synth::test::check_bad_input(synth::test::run(STREAM_SD_TRAIN_EXE, {"--config", kSmoke, "--model", dir.file("m"), "--data",
                                                                      dir.file("no-such-data")}, SYNTH_SOURCE_DIR),
                               "stream-sd-train", {"no-such-data"});
  synth::test::check_bad_input(
      synth::test::run(STREAM_SD_TRAIN_EXE, {"--config", kSmoke, "--model", dir.file("m"), "--vae-steps", "0"}, SYNTH_SOURCE_DIR),
      "stream-sd-train", {"steps"});
}
