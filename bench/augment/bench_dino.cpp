// Source images/s and crops/s of DINO multi-crop: the CPU reference on one core, and the fused
// kernels on the GPU when built with CUDA. Parameters are drawn inside the timed loop, as the
// trainer does per batch.
//   bench_dino [--height 384] [--width 512] [--global 1] [--local 8] [--global-size 224]
//              [--local-size 96] [--cpu-images 16] [--gpu-batch 256] [--gpu-reps 20] [--peer]
//              [--json FILE] [--stages]
// --stages: also the CPU time per contract step (dino_cpu.hpp building blocks, same parameters),
// to see where the CPU reference spends its time.
// --peer: after ours, bench/augment/peer_dino.py runs DINO's multi-crop transforms built from
// torchvision.transforms on PIL images (the DINO paper's recipe, one thread), on as many random
// source images of the same size with the same crop counts, sizes and scales, with the project
// venv's python (SYNTH_PYTHON); the ratio of source images/s, ours (CPU, one intra-op thread) over
// theirs, is printed.
// The target: >= 20,000 source images/s for 1x224 + 8x96 crops of 512x384 images on one
// H100.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "../peer.hpp"
#include "augment/dino_cpu.hpp"
#ifdef SYNTH_WITH_CUDA
#include "augment/dino_gpu.hpp"
#endif

namespace {

std::string arg(int argc, char** argv, const std::string& key, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + key) return argv[i + 1];
  return fallback;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::vector<synth::DinoCropParams>> draw(const synth::DinoConfig& cfg, const std::vector<synth::ImageU8>& imgs,
                                                     uint64_t first_index) {
  std::vector<std::vector<synth::DinoCropParams>> p;
  for (size_t b = 0; b < imgs.size(); ++b)
    p.push_back(synth::draw_dino_params(cfg, 0, first_index + b, imgs[b].height, imgs[b].width));
  return p;
}

// Seconds per contract step of the CPU reference over all crops (the dino_crop_cpu sequence, step
// by step with a clock around each).
void print_stages(const std::vector<synth::ImageU8>& imgs, const std::vector<std::vector<synth::DinoCropParams>>& params,
                  const std::vector<double>& mean, const std::vector<double>& std) {
  const float m[3] = {float(mean[0]), float(mean[1]), float(mean[2])}, sd[3] = {float(std[0]), float(std[1]), float(std[2])};
  const char* names[] = {"resized crop (bicubic aa)", "hflip", "brightness", "contrast", "saturation", "hue",
                         "grayscale", "gaussian blur", "solarize", "normalize + copy"};
  double t[10] = {0};
  int n[10] = {0};
  auto timed = [&](int k, auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t[k] += seconds_since(t0);
    ++n[k];
  };
  std::vector<float> out;
  for (size_t b = 0; b < imgs.size(); ++b)
    for (const auto& p : params[b]) {
      synth::PlanarImage img;
      timed(0, [&] { img = synth::dino_resized_crop(imgs[b], p.box, p.out_size, p.out_size); });
      if (p.flip) timed(1, [&] { synth::dino_hflip(img); });
      if (p.jitter)
        for (int i = 0; i < p.jitter_ops; ++i) switch (p.jitter_order[size_t(i)]) {
            case synth::kJitterBrightness: timed(2, [&] { synth::dino_adjust_brightness(img, p.brightness); }); break;
            case synth::kJitterContrast: timed(3, [&] { synth::dino_adjust_contrast(img, p.contrast); }); break;
            case synth::kJitterSaturation: timed(4, [&] { synth::dino_adjust_saturation(img, p.saturation); }); break;
            default: timed(5, [&] { synth::dino_adjust_hue(img, p.hue); }); break;
          }
      if (p.grayscale) timed(6, [&] { synth::dino_grayscale(img); });
      if (p.blur) timed(7, [&] { synth::dino_gaussian_blur(img, p.sigma); });
      if (p.solarize) timed(8, [&] { synth::dino_solarize(img); });
      timed(9, [&] {
        synth::dino_normalize(img, m, sd);
        out.assign(img.data.begin(), img.data.end());
      });
    }
  double total = 0;
  for (const double v : t) total += v;
  std::printf("CPU reference by step (%zu images, %.1f ms in all):\n", imgs.size(), total * 1e3);
  std::printf("  %-26s %8s %12s %8s\n", "step", "calls", "ms", "share");
  for (int k = 0; k < 10; ++k)
    std::printf("  %-26s %8d %12.2f %7.1f%%\n", names[k], n[k], t[k] * 1e3, total > 0 ? 100 * t[k] / total : 0.0);
}

}  // namespace

int main(int argc, char** argv) try {
  const int H = std::stoi(arg(argc, argv, "height", "384")), W = std::stoi(arg(argc, argv, "width", "512"));
  synth::DinoConfig cfg;
  cfg.global_crops = std::stoi(arg(argc, argv, "global", "1"));
  cfg.local_crops = std::stoi(arg(argc, argv, "local", "8"));
  cfg.global_size = std::stoi(arg(argc, argv, "global-size", "224"));
  cfg.local_size = std::stoi(arg(argc, argv, "local-size", "96"));
  const int cpu_images = std::stoi(arg(argc, argv, "cpu-images", "16"));
  const std::vector<double> mean = {0.485, 0.456, 0.406}, std = {0.229, 0.224, 0.225};
  const int crops_per_image = cfg.global_crops + cfg.local_crops;
  const bool peer = [&] {
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--peer") return true;
    return false;
  }();
  const std::string json = arg(argc, argv, "json", "");
  const std::string python = peer ? synth_bench::peer_python() : std::string();
  torch::set_num_threads(1);

  std::vector<synth::ImageU8> imgs(static_cast<size_t>(cpu_images));
  for (int b = 0; b < cpu_images; ++b) {
    imgs[size_t(b)].height = H;
    imgs[size_t(b)].width = W;
    imgs[size_t(b)].pixels.resize(imgs[size_t(b)].bytes());
    synth::CounterRng rng(1, uint64_t(b), synth::RngPurpose::kNoise);
    for (auto& v : imgs[size_t(b)].pixels) v = uint8_t(rng.below(256));
  }
  std::vector<const synth::ImageU8*> ptrs;
  for (const auto& im : imgs) ptrs.push_back(&im);

  std::printf("DINO multi-crop: %dx%d sources -> %d x %d + %d x %d crops\n", W, H, cfg.global_crops, cfg.global_size,
              cfg.local_crops, cfg.local_size);
  std::printf("%-22s %8s %12s %12s %14s\n", "path", "batch", "images/s", "crops/s", "ms/batch");

  // CPU reference, one core.
  synth::dino_augment_cpu_with(cfg, mean, std, {ptrs[0]}, draw(cfg, {imgs[0]}, 0));  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  const auto params = draw(cfg, imgs, 0);
  const synth::DinoBatch out = synth::dino_augment_cpu_with(cfg, mean, std, ptrs, params);
  const double s = seconds_since(t0);
  std::printf("%-22s %8d %12.1f %12.1f %14.2f\n", "cpu reference, 1 core", cpu_images, cpu_images / s,
              cpu_images * crops_per_image / s, s * 1e3);
  std::fflush(stdout);
  std::vector<synth_bench::Row> rows = {{"cpu, 1 thread", cpu_images / s, 0}};
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--stages") print_stages(imgs, params, mean, std);

#ifdef SYNTH_WITH_CUDA
  if (torch::cuda::is_available()) {
    const int batch = std::stoi(arg(argc, argv, "gpu-batch", "256")), reps = std::stoi(arg(argc, argv, "gpu-reps", "20"));
    std::vector<torch::Tensor> sources;
    std::vector<synth::ImageU8> gimgs;
    for (int b = 0; b < batch; ++b) {
      const synth::ImageU8& im = imgs[size_t(b % cpu_images)];
      gimgs.push_back(im);
      sources.push_back(torch::from_blob(const_cast<uint8_t*>(im.pixels.data()), {H, W, 3}, torch::kUInt8).to(torch::kCUDA));
    }
    for (const torch::Dtype dtype : {torch::kFloat16, torch::kFloat32}) {
      synth::dino_augment_gpu(cfg, mean, std, sources, draw(cfg, gimgs, 0), dtype);  // warm-up
      torch::cuda::synchronize();
      const auto g0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r)
        synth::dino_augment_gpu(cfg, mean, std, sources, draw(cfg, gimgs, uint64_t(r) * batch), dtype);
      torch::cuda::synchronize();
      const double gs = seconds_since(g0) / reps;
      std::printf("%-22s %8d %12.1f %12.1f %14.2f\n", dtype == torch::kFloat16 ? "cuda fp16" : "cuda fp32", batch,
                  batch / gs, double(batch) * crops_per_image / gs, gs * 1e3);
      rows.push_back({dtype == torch::kFloat16 ? "cuda fp16" : "cuda fp32", batch / gs, 0});
    }
  }
#endif
  if (peer) {
    auto num = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.17g", v);
      return std::string(b);
    };
    const double theirs = synth_bench::run_peer(
        python, SYNTH_PEER_DINO,
        {"--height", std::to_string(H), "--width", std::to_string(W), "--global", std::to_string(cfg.global_crops),
         "--local", std::to_string(cfg.local_crops), "--global-size", std::to_string(cfg.global_size),
         "--local-size", std::to_string(cfg.local_size), "--global-scale-min", num(cfg.global_scale_min),
         "--global-scale-max", num(cfg.global_scale_max), "--local-scale-min", num(cfg.local_scale_min),
         "--local-scale-max", num(cfg.local_scale_max), "--images", std::to_string(cpu_images)})
                              .back();
    rows[0].theirs = theirs;
    std::printf("ratio synthstream cpu / torchvision+PIL (source images/s, 1 thread each): %.3f\n", rows[0].ours / theirs);
  }
  if (!json.empty())
    synth_bench::write_json(json, "bench_dino", peer ? "torchvision+PIL DINO transforms (peer_dino.py)" : "",
                            {{"source", std::to_string(W) + "x" + std::to_string(H)},
                             {"crops", std::to_string(cfg.global_crops) + "x" + std::to_string(cfg.global_size) + " + " +
                                           std::to_string(cfg.local_crops) + "x" + std::to_string(cfg.local_size)},
                             {"images", std::to_string(cpu_images)}, {"threads", "1"}},
                            rows);
  return out.global.numel() > 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_dino: error: %s\n", e.what());
  return 1;
}
