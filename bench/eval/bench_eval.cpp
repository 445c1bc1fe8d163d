// Evaluation input rate: JPEG decode + resize (shorter side 256) + centre crop 224 + normalize, in
// images/s, for several eval.decode_threads, on a generated class-folder tree of ImageNet-sized
// JPEGs (500 x 375, quality 90). The classifier is left out (it returns zeros at once), so this is
// what the decode pool can feed a GPU that evaluates much faster than that.
//
//   bench_eval [--images 1000] [--threads 1,2,4] [--batch 250]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/rng.hpp"
#include "eval/evaluator.hpp"
#include "io/image.hpp"

namespace {

namespace fs = std::filesystem;

std::string arg(int argc, char** argv, const std::string& key, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + key) return argv[i + 1];
  return fallback;
}

// Smooth colour gradients plus noise: compresses like a photograph, unlike flat colour or pure noise.
synth::ImageU8 photo_like(int h, int w, uint64_t index) {
  synth::ImageU8 img;
  img.height = h;
  img.width = w;
  img.pixels.resize(img.bytes());
  synth::CounterRng rng(0, index, synth::RngPurpose::kNoise, 0);
  const int phase = int(rng.below(256));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const int v = (x * (c + 1) * 255 / w + y * 255 / h + phase) / 2 % 256 + int(rng.below(24)) - 12;
        img.pixels[(size_t(y) * w + x) * 3 + size_t(c)] = uint8_t(std::min(255, std::max(0, v)));
      }
  return img;
}

}  // namespace

int main(int argc, char** argv) try {
  const int images = std::stoi(arg(argc, argv, "images", "1000"));
  const int batch = std::stoi(arg(argc, argv, "batch", "250"));
  std::vector<int> threads;
  std::stringstream list(arg(argc, argv, "threads", "1,2,4"));
  for (std::string t; std::getline(list, t, ',');) threads.push_back(std::stoi(t));

  const fs::path root = fs::temp_directory_path() / ("synth_bench_eval_" + std::to_string(::getpid()));
  constexpr int kClasses = 10;
  uintmax_t bytes = 0;
  for (int i = 0; i < images; ++i) {
    const fs::path dir = root / ("class" + std::to_string(i % kClasses));
    fs::create_directories(dir);
    const fs::path file = dir / (std::to_string(i) + ".jpg");
    synth::write_jpeg(file.string(), photo_like(375, 500, uint64_t(i)));
    bytes += fs::file_size(file);
  }
  std::printf("tree: %d JPEGs of 500x375 (%.0f KB on average), %d classes; torch threads %d\n", images,
              double(bytes) / images / 1024.0, kClasses, torch::get_num_threads());

  synth::Config cfg;
  cfg.model.num_classes = kClasses;
  cfg.eval.source = "none";
  cfg.eval.sets = {"bench=" + root.string() + ",layout=sorted"};
  cfg.eval.cache_mb = 0;  // decode at every call, as for sets too large to keep
  cfg.eval.batch_size = batch;
  const synth::Classifier zeros = [](const torch::Tensor& x) { return torch::zeros({x.size(0), int64_t(kClasses)}); };
  for (const int t : threads) {
    cfg.eval.decode_threads = t;
    const synth::Evaluator evaluator(cfg);
    evaluator(zeros);  // warm-up: page cache, allocator
    const auto t0 = std::chrono::steady_clock::now();
    const auto results = evaluator(zeros);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("decode_threads %2d: %7.1f images/s (%lld images in %.2f s)\n", t, double(results[0].images) / s,
                (long long)results[0].images, s);
  }
  fs::remove_all(root);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_eval: %s\n", e.what());
  return 1;
}
