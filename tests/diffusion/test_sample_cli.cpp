// stream-sample as a user runs it: --init-latents / --out-latents reproduce the diffusers run
// (tests/fixtures/tiny-sd run.dpmpp2m.*) through the command line; bad model dirs exit 2 with one line.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "io/safetensors.hpp"
#include "support/child_process.hpp"

#ifdef STREAM_SAMPLE_EXE
namespace {
const std::string kSd = SYNTH_TEST_DATA "/tiny-sd";
}  // namespace

TEST_CASE("stream-sample --init-latents/--out-latents reproduce the diffusers run") {
  const synth::test::ScratchDir dir("sample_cli");
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  synth::save_safetensors(dir.file("init.safetensors"), {{"latents", vectors.tensor("run.dpmpp2m.init_latents")}});
  const synth::test::Result r = synth::test::run(
      STREAM_SAMPLE_EXE, {"--model", kSd, "--prompt", "papillon, toy spaniel", "--prompt",
                          "a photo of multiple different Shih-Tzu, toy dog", "--scheduler", "dpmpp2m", "--steps", "10",
                          "--guidance", "7.5", "--device", "cpu", "--dtype", "fp32", "--init-latents",
                          dir.file("init.safetensors"), "--out-latents", dir.file("final.safetensors"), "--out",
                          dir.file("png")});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  const auto ours = synth::SafeTensorsFile::open(dir.file("final.safetensors")).tensor("latents");
  const auto ref = vectors.tensor("run.dpmpp2m.final_latents");
  CHECK(((ours - ref).norm() / ref.norm()).item<double>() < 1e-3);
  CHECK(std::filesystem::exists(dir.path / "png" / "0.png"));
  CHECK(std::filesystem::exists(dir.path / "png" / "contact_sheet.png"));

  // A folder that is not a diffusers model: one line naming the missing file.
  synth::test::check_bad_input(synth::test::run(STREAM_SAMPLE_EXE, {"--model", dir.str(), "--prompt", "x"}),
                               "stream-sample", {"model_index.json"});
}
#endif
