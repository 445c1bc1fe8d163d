// Resource limits a batch system or a container sets (docs/RELIABILITY.md, "Resource limits"):
// under them stream-train completes, or stops with one line naming the limit and exit 2, never a
// crash and never a half-written checkpoint.
#include <doctest/doctest.h>
#include <png.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kRepo = SYNTH_SOURCE_DIR;

// `exe args` under one `ulimit` setting of bash (e.g. "-n 16", "-v 3000000"), with only
// stdin, stdout and stderr open (the test runner's other descriptors would count against -n).
synth::test::Result limited(const std::string& ulimit, const std::vector<std::string>& args) {
  const std::string close_inherited = "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done; ";
  std::vector<std::string> sh = {"-c", close_inherited + "ulimit " + ulimit + " && exec \"$0\" \"$@\"", STREAM_TRAIN_EXE};
  sh.insert(sh.end(), args.begin(), args.end());
  return synth::test::run("/bin/bash", sh, kRepo, 600);
}

std::vector<std::string> with_sets(std::vector<std::string> args, const std::vector<std::string>& sets) {
  for (const auto& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  return args;
}

// A small RGB PNG of one flat colour (libpng's simplified API; this binary links no LibTorch).
void write_png(const fs::path& path, int colour, int height, int width) {
  std::vector<uint8_t> rgb(size_t(height) * width * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t((colour * 37 + int(i % 3) * 80 + int(i / 3) % 7) & 0xff);
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = png_uint_32(width);
  img.height = png_uint_32(height);
  img.format = PNG_FORMAT_RGB;
  REQUIRE(png_image_write_to_file(&img, path.c_str(), 0, rgb.data(), 0, nullptr) != 0);
}

// No checkpoint was left half-written: only complete ckpt-*.pt files (no temporaries).
void check_no_partial_checkpoint(const fs::path& run) {
  if (!fs::exists(run / "checkpoints")) return;
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
    INFO(e.path());
    CHECK(e.path().extension() == ".pt");
  }
}

// A failed run under a limit: one line "stream-train: error: ..." containing `words`, exit 2.
void check_one_line(const synth::test::Result& r, const std::vector<std::string>& words) {
  INFO("stderr: " << r.err);
  CHECK(r.exited);  // not a signal, not a crash
  CHECK(!r.core_dumped);
  CHECK(r.code == 2);
  const auto lines = r.err_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("stream-train: error: ", 0) == 0);
  for (const auto& w : words) CHECK(lines[0].find(w) != std::string::npos);
}

}  // namespace

TEST_CASE("stream-train under ulimit -n: 320 image files train with 16 descriptors; at 5 it stops with one line") {
  const synth::test::ScratchDir s("limits_files");
  // 8 class folders of 40 small PNGs: many more files than descriptors. Each decoder thread
  // holds one file at a time, so the need does not grow with the data.
  const fs::path tree = s.path / "tree";
  std::vector<std::string> classes;
  for (int c = 0; c < 8; ++c) {
    const std::string name = "class" + std::to_string(c);
    fs::create_directories(tree / name);
    for (int i = 0; i < 40; ++i) write_png(tree / name / ("img" + std::to_string(i) + ".png"), c, i % 2 ? 30 : 44, i % 2 ? 41 : 33);
    classes.push_back(name);
  }
  const std::vector<std::string> base = {
      kRepo + "/configs/smoke.toml", "--set", "run.dir=" + s.str(), "--set", "data.source=\"image_folder\"",
      "--set", "data.train_path=\"" + tree.string() + "\"", "--set", "data.decode_threads=4", "--set", "model.num_classes=8",
      "--set", "eval.source=\"none\"", "--set", "eval.sets=[\"tree=" + tree.string() + "\"]", "--set", "eval.decode_threads=4",
      "--set", "eval.resize=32", "--set", "eval.crop=28", "--set", "train.total_images=640", "--set", "train.checkpoint_every_images=320",
      "--set", "run.sample_every_images=0", "--set", "data.class_file=\"" + s.file("classes.txt") + "\"",
      "--set", "ring.max_height=48", "--set", "ring.max_width=48"};
  {
    std::ofstream ids(s.file("classes.txt"));
    ids << "id\tname\n";
    for (const auto& c : classes) ids << c << "\t" << c << "\n";
  }
  const synth::test::Result ok = limited("-n 16", with_sets(base, {"run.name=\"n16\""}));
  INFO("stderr: " << ok.err);
  REQUIRE(ok.code == 0);
  CHECK(ok.out.find("0 duplicates, 0 gaps") != std::string::npos);
  CHECK(ok.out.find("tree top-1") != std::string::npos);

  const synth::test::Result low = limited("-n 5", with_sets(base, {"run.name=\"n5\""}));
  check_one_line(low, {"too many open files (ulimit -n is 5)", "raise the limit"});
  check_no_partial_checkpoint(s.path / "n5");
}

TEST_CASE("stream-train under a tight ulimit -v: a whole run completes or stops with one line, never a crash") {
  const synth::test::ScratchDir s("limits_memory");
  // LibTorch and its CUDA libraries map about 2.7 GB of address space before main(); the smoke run
  // needs about 0.6 GB more, and at 3.0 GB oneDNN crashed (a null JIT kernel) before the start-up
  // check (src/app/cli.hpp: check_address_space) asked for 1 GiB of headroom. Each run completes
  // or stops with one line: at start-up, or at an allocation that fails cleanly.
  int completed = 0, stopped = 0;
  for (const long kb : {2800000L, 3000000L, 3150000L, 3600000L, 3800000L, 4500000L}) {
    CAPTURE(kb);
    const std::string name = "v" + std::to_string(kb);
    const synth::test::Result r =
        limited("-v " + std::to_string(kb),
                {kRepo + "/configs/smoke.toml", "--set", "run.dir=" + s.str(), "--set", "run.name=\"" + name + "\"", "--set",
                 "train.total_images=256", "--set", "train.checkpoint_every_images=128", "--set", "eval.limit=200", "--set",
                 "run.sample_every_images=0"});
    MESSAGE("ulimit -v " << kb << ": exit " << r.code << (r.err.empty() ? "" : ", " + r.err));
    if (r.code == 0) {
      ++completed;
      CHECK(r.out.find("0 duplicates, 0 gaps") != std::string::npos);
    } else {
      ++stopped;
      check_one_line(r, {"out of "});
      if (kb <= 3600000) CHECK(r.err.find("out of address space: ulimit -v is " + std::to_string(kb) + " kB") != std::string::npos);
    }
    check_no_partial_checkpoint(s.path / name);
  }
  // On a GPU machine the CUDA runtime may reserve far more address space; there every run may stop.
  if (!fs::exists("/dev/nvidia0")) {
    CHECK(completed >= 1);
    CHECK(stopped >= 1);
  }
}
