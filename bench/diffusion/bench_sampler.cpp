// Images/s of the guided sampler for a model directory, per batch size, next to the FLOP floor.
//   bench_sampler [--model DIR] [--width W] [--height H] [--steps N] [--scheduler S]
//                 [--device cpu|cuda] [--dtype fp32|fp16] [--batch 1,8,32] [--tflops RATE]
// Defaults: the toy model of the test data on the CPU. On a GPU give a full-size SD v1 directory,
// --width 512 --height 384 --steps 50 --dtype fp16. The FLOP floor of SD v1.4 at 512x384 (U-Net
// on a guided pair 1.16 TFLOP x 50 steps + VAE decode 1.88 TFLOP = 60 TFLOP per image) at the
// measured 755 TFLOP/s of an H100 is 12.6 images/s per GPU; --floor gives that figure to print
// the fraction reached.
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/host_memory.hpp"
#include "diffusion/sampler.hpp"

namespace {
std::string arg(int argc, char** argv, const std::string& key, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + key) return argv[i + 1];
  return fallback;
}
void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}
}  // namespace

int main(int argc, char** argv) try {
  synth::keep_freed_memory();
  const std::string model = arg(argc, argv, "model", SYNTH_BENCH_TINY_SD);
  const std::string device_name = arg(argc, argv, "device", "cpu"), dtype_name = arg(argc, argv, "dtype", "fp32");
  const torch::Device device = device_name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  synth::SamplerOptions o;
  o.width = std::stoll(arg(argc, argv, "width", "24"));
  o.height = std::stoll(arg(argc, argv, "height", "32"));
  o.steps = std::stoll(arg(argc, argv, "steps", "10"));
  o.scheduler = arg(argc, argv, "scheduler", "pndm");
  const double floor_ips = std::stod(arg(argc, argv, "floor", "0"));
  std::vector<int64_t> batches;
  std::stringstream bs(arg(argc, argv, "batch", "1,4"));
  for (std::string b; std::getline(bs, b, ',');) batches.push_back(std::stoll(b));

  synth::StableDiffusion sd(model, device, dtype_name == "fp16" ? torch::kFloat16 : torch::kFloat32);
  std::printf("model %s, %lldx%lld, %s %lld steps, guidance %.1f, %s %s\n", model.c_str(), (long long)o.width,
              (long long)o.height, o.scheduler.c_str(), (long long)o.steps, o.guidance, device_name.c_str(), dtype_name.c_str());
  std::printf("%6s %12s %12s %12s\n", "batch", "images/s", "s/image", "of floor");
  for (const int64_t b : batches) {
    std::vector<std::string> prompts(size_t(b), "a photo of a papillon, toy spaniel");
    std::vector<uint64_t> idx;
    for (int64_t i = 0; i < b; ++i) idx.push_back(uint64_t(i));
    const auto noise = sd.initial_noise(idx, 0, o.width, o.height);
    sd.sample(prompts, noise, o);  // warm-up (allocator, cuDNN autotuning, embeddings cached)
    sync(device);
    const auto t0 = std::chrono::steady_clock::now();
    const int reps = 2;
    for (int r = 0; r < reps; ++r) sd.sample(prompts, noise, o);
    sync(device);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    const double ips = double(b) / s;
    std::printf("%6lld %12.3f %12.3f %11.1f%%\n", (long long)b, ips, s / double(b), floor_ips > 0 ? 100 * ips / floor_ips : 0.0);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_sampler: error: %s\n", e.what());
  return 1;
}
