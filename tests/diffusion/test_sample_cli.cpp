// stream-sample as a user runs it: --init-latents / --out-latents reproduce the diffusers run
// (tests/data/tiny-sd run.dpmpp2m.*) through the command line; bad model dirs exit 2 with one line.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>

#include "io/safetensors.hpp"

#ifdef STREAM_SAMPLE_EXE
namespace {
const std::string kSd = SYNTH_TEST_DATA "/tiny-sd";

int run_shell(const std::string& cmd, std::string* err_out = nullptr) {
  const std::string err_file = std::filesystem::temp_directory_path() / ("synth_sample_err_" + std::to_string(::getpid()));
  const int status = std::system((cmd + " >/dev/null 2>" + err_file).c_str());
  if (err_out) {
    FILE* f = std::fopen(err_file.c_str(), "r");
    char buf[4096];
    size_t n = f ? std::fread(buf, 1, sizeof buf, f) : 0;
    if (f) std::fclose(f);
    err_out->assign(buf, n);
  }
  std::filesystem::remove(err_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

TEST_CASE("stream-sample --init-latents/--out-latents reproduce the diffusers run") {
  const auto dir = std::filesystem::temp_directory_path() / ("synth_sample_cli_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  synth::save_safetensors((dir / "init.safetensors").string(), {{"latents", vectors.tensor("run.dpmpp2m.init_latents")}});
  const std::string cmd = std::string(STREAM_SAMPLE_EXE) + " --model " + kSd +
                          " --prompt 'papillon, toy spaniel' --prompt 'a photo of multiple different Shih-Tzu, toy dog'"
                          " --scheduler dpmpp2m --steps 10 --guidance 7.5 --device cpu --dtype fp32 --init-latents " +
                          (dir / "init.safetensors").string() + " --out-latents " + (dir / "final.safetensors").string() +
                          " --out " + (dir / "png").string();
  REQUIRE(run_shell(cmd) == 0);
  const auto ours = synth::SafeTensorsFile::open((dir / "final.safetensors").string()).tensor("latents");
  const auto ref = vectors.tensor("run.dpmpp2m.final_latents");
  CHECK(((ours - ref).norm() / ref.norm()).item<double>() < 1e-3);
  CHECK(std::filesystem::exists(dir / "png" / "0.png"));
  CHECK(std::filesystem::exists(dir / "png" / "contact_sheet.png"));

  std::string err;
  CHECK(run_shell(std::string(STREAM_SAMPLE_EXE) + " --model " + dir.string() + " --prompt x", &err) == 2);
  CHECK(err.rfind("stream-sample: error: ", 0) == 0);
  CHECK(err.find("model_index.json") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  std::filesystem::remove_all(dir);
}
#endif
