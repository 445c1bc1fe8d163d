// Checkpoint damage seen from the command line: --resume passes over a truncated newest
// checkpoint with one warning line and resumes from the newest intact one, still training every
// index exactly once; a disk that fills while a checkpoint is written stops the run with one line
// naming the file, and the previous checkpoint resumes the run.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/child_process.hpp"
#include "support/tmpfs_mount.hpp"

namespace fs = std::filesystem;

namespace {

using synth::test::Result;
using synth::test::run;
using synth::test::slurp;

const std::string kExe = STREAM_TRAIN_EXE;

// A short Fashion-MNIST run: 128 images a step, a checkpoint every 2 steps, a small evaluation.
std::vector<std::string> fault_run_args(const synth::test::ScratchDir& s, const std::string& name, int total,
                                        bool resume) {
  std::vector<std::string> args = {SYNTH_SOURCE_DIR "/configs/fmnist.toml", "--set", "run.dir=" + s.str(),
                                   "--set", "run.name=\"" + name + "\"", "--set", "train.batch_size=128",
                                   "--set", "train.total_images=" + std::to_string(total),
                                   "--set", "train.checkpoint_every_images=256", "--set", "train.keep_checkpoints=2",
                                   "--set", "eval.limit=100", "--set", "run.sample_every_images=0"};
  if (resume) args.push_back("--resume");
  return args;
}

nlohmann::json last_summary(const fs::path& root) {
  std::ifstream in(root / "metrics.jsonl");
  nlohmann::json last;
  for (std::string l; std::getline(in, l);) last = nlohmann::json::parse(l);
  REQUIRE(last.value("event", "") == "summary");
  return last;
}

// Every index of [0, images_seen) trained once; this invocation trained `trained` of them.
void check_exactly_once(const fs::path& root, int images_seen, int trained) {
  const nlohmann::json s = last_summary(root);
  INFO("summary: " << s.dump());
  CHECK(s["images_seen"] == images_seen);
  CHECK(s["images_trained"] == trained);
  CHECK(s["images_produced"] == trained);
  CHECK(s["duplicates"] == 0);
  CHECK(s["gaps"] == 0);
  CHECK(s["exactly_once"] == true);
}

std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (l.find(needle) != std::string::npos) out.push_back(l);
  return out;
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

void write_bytes(const fs::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("stream-train --resume skips a truncated newest checkpoint with one warning; every index still once") {
  synth::test::ScratchDir s;
  const fs::path root = s.path / "damaged", ckpts = root / "checkpoints";
  const Result first = run(kExe, fault_run_args(s, "damaged", 512, false));
  INFO("stderr: " << first.err);
  REQUIRE(first.code == 0);
  const fs::path older = ckpts / "ckpt-000000000256.pt", newest = ckpts / "ckpt-000000000512.pt";
  REQUIRE(files_in(ckpts).size() == 2);
  fs::resize_file(newest, fs::file_size(newest) / 2);

  const Result resumed = run(kExe, fault_run_args(s, "damaged", 512, true));
  INFO("resumed stdout: " << resumed.out);
  INFO("resumed stderr: " << resumed.err);
  REQUIRE(resumed.code == 0);
  const auto warnings = lines_with(resumed.out, "warning:");
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("checkpoint '" + newest.string() + "' is unreadable, truncated or corrupt") != std::string::npos);
  CHECK(warnings[0].find("skipped") != std::string::npos);
  CHECK(lines_with(slurp(root / "log.txt"), "warning: checkpoint '" + newest.string()).size() == 1);
  CHECK(resumed.out.find("resume: ckpt-000000000256.pt at step 2, 256 images") != std::string::npos);
  // The ledger of ckpt-256 holds [0, 256): the images after it were trained again, once.
  check_exactly_once(root, 512, 256);

  // The damaged file was replaced by an intact one: the next resume takes it, without a warning.
  const Result again = run(kExe, fault_run_args(s, "damaged", 512, true));
  CHECK(again.code == 0);
  CHECK(again.out.find("resume: ckpt-000000000512.pt at step 4") != std::string::npos);
  CHECK(lines_with(again.out, "warning:").empty());
  CHECK(fs::exists(older));
}

static const char* const kDiskFullCli =
    "stream-train: a disk full while writing a checkpoint stops the run by name; the previous one resumes it";
TEST_CASE(kDiskFullCli * synth::test::skip_unless_root(kDiskFullCli)) {
  synth::test::ScratchDir s;
  const fs::path root = s.path / "full", ckpts = root / "checkpoints";
  const fs::path kept = ckpts / "ckpt-000000000256.pt", failed = ckpts / "ckpt-000000000512.pt";
  // 256 images on the ordinary disk, for the first checkpoint and its size.
  const Result first = run(kExe, fault_run_args(s, "full", 256, false));
  INFO("stderr: " << first.err);
  REQUIRE(first.code == 0);
  const std::string kept_bytes = slurp(kept);
  REQUIRE(!kept_bytes.empty());
  fs::remove(kept);

  {
    // checkpoints/ on a tmpfs with room for one checkpoint and a half: the run goes on to 768
    // images, and its checkpoint at 512 does not fit beside the one at 256.
    std::unique_ptr<synth::test::TmpfsMount> small;
    REQUIRE_NOTHROW(small = std::make_unique<synth::test::TmpfsMount>(ckpts, kept_bytes.size() * 3 / 2));
    write_bytes(kept, kept_bytes);
    const Result full = run(kExe, fault_run_args(s, "full", 768, true));
    INFO("stdout: " << full.out);
    INFO("stderr: " << full.err);
    CHECK(full.exited);
    CHECK(!full.core_dumped);
    CHECK(full.code == 1);
    const auto lines = full.err_lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].rfind("stream-train: error: checkpoint '" + failed.string() + "' not written", 0) == 0);
    CHECK(lines[0].find("No space left on device") != std::string::npos);
    CHECK(lines_with(slurp(root / "log.txt"), "No space left on device").size() == 1);
    // Nothing but the previous checkpoint, as it was: no temp file, no partial ckpt-512.
    CHECK(files_in(ckpts) == std::vector<fs::path>{kept});
    CHECK(slurp(kept) == kept_bytes);
  }

  // Unmounted: checkpoints/ is the ordinary (empty) folder again; the kept checkpoint resumes.
  REQUIRE(files_in(ckpts).empty());
  write_bytes(kept, kept_bytes);
  const Result resumed = run(kExe, fault_run_args(s, "full", 768, true));
  INFO("resumed stderr: " << resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(resumed.out.find("resume: ckpt-000000000256.pt at step 2") != std::string::npos);
  check_exactly_once(root, 768, 512);
}
