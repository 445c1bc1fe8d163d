// Images/s of the guided sampler for a model directory, per image size and batch size, next to the
// FLOP floor; with --peer, next to diffusers' StableDiffusionPipeline at the same settings.
//   bench_sampler [--model DIR] [--sizes WxH[,WxH...] | --width W --height H] [--steps N]
//                 [--scheduler S] [--guidance G] [--device cpu|cuda] [--dtype fp32|fp16]
//                 [--batch 1,8,32] [--reps N] [--floor RATE] [--flush-denormal] [--peer] [--json FILE]
// --flush-denormal: float32 denormals are flushed to zero on the CPU, on both sides (a diagnostic:
// random weights can make layers produce denormals, which x86 computes on many times slower).
// Defaults: the toy model of the test data on the CPU. On a GPU give a full-size SD v1 directory,
// --width 512 --height 384 --steps 50 --dtype fp16. The FLOP floor of SD v1.4 at 512x384 (U-Net
// on a guided pair 1.16 TFLOP x 50 steps + VAE decode 1.88 TFLOP = 60 TFLOP per image) at the
// measured 755 TFLOP/s of an H100 is 12.6 images/s per GPU; --floor gives that figure to print
// the fraction reached.
//
// --peer: after our figures (and after our model is freed), bench/diffusion/peer_sampler.py runs
// StableDiffusionPipeline (SDPA attention, no safety checker, output_type "pt": VAE decode
// included, as ours decodes) with the project venv's python (SYNTH_PYTHON), same scheduler,
// steps, guidance, batch, sizes, dtype, warm-up and repetitions, and the ratio ours / theirs is
// printed per row. On both sides the prompt embeddings are computed before the clock starts (ours
// from its embedding cache after the warm-up, theirs by encode_prompt once). When --model names a
// directory that does not exist, the peer first builds a full-size random SD v1.4 there (fixed
// seed, diffusers layout, about 4.3 GB in fp32: give a path under /tmp or the build folder).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../peer.hpp"
#include "core/host_memory.hpp"
#include "diffusion/sampler.hpp"

namespace {
std::string arg(int argc, char** argv, const std::string& key, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + key) return argv[i + 1];
  return fallback;
}
bool flag(int argc, char** argv, const std::string& key) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] == "--" + key) return true;
  return false;
}
void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}
}  // namespace

int main(int argc, char** argv) try {
  synth::keep_freed_memory();
  const std::string model = arg(argc, argv, "model", SYNTH_BENCH_TINY_SD);
  const std::string device_name = arg(argc, argv, "device", "cpu"), dtype_name = arg(argc, argv, "dtype", "fp32");
  const torch::Device device = device_name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  const bool peer = flag(argc, argv, "peer"), flush_denormal = flag(argc, argv, "flush-denormal");
  if (flush_denormal) at::globalContext().setFlushDenormal(true);
  const std::string json = arg(argc, argv, "json", "");
  synth::SamplerOptions o;
  o.steps = std::stoll(arg(argc, argv, "steps", "10"));
  o.scheduler = arg(argc, argv, "scheduler", "pndm");
  o.guidance = std::stod(arg(argc, argv, "guidance", "7.5"));
  const int reps = std::stoi(arg(argc, argv, "reps", "2"));
  const double floor_ips = std::stod(arg(argc, argv, "floor", "0"));
  std::vector<int64_t> batches;
  for (const auto& b : split(arg(argc, argv, "batch", "1,4"))) batches.push_back(std::stoll(b));
  const std::string sizes_text =
      arg(argc, argv, "sizes", arg(argc, argv, "width", "24") + "x" + arg(argc, argv, "height", "32"));
  std::vector<std::pair<int64_t, int64_t>> sizes;  // width, height
  for (const auto& s : split(sizes_text)) {
    const size_t x = s.find('x');
    if (x == std::string::npos) throw std::runtime_error("--sizes: '" + s + "' is not WxH");
    sizes.emplace_back(std::stoll(s.substr(0, x)), std::stoll(s.substr(x + 1)));
  }
  if (reps < 1 || batches.empty() || sizes.empty()) throw std::runtime_error("--reps, --batch and --sizes need values >= 1");

  const std::string python = peer ? synth_bench::peer_python() : std::string();
  const std::string script = SYNTH_PEER_SAMPLER;
  std::vector<std::string> peer_args = {"--model", model, "--sizes", sizes_text, "--steps", std::to_string(o.steps),
                                        "--scheduler", o.scheduler, "--guidance", std::to_string(o.guidance),
                                        "--device", device_name, "--dtype", dtype_name,
                                        "--batch", arg(argc, argv, "batch", "1,4"), "--reps", std::to_string(reps)};
  if (flush_denormal) peer_args.push_back("--flush-denormal");
  std::error_code ec;
  if (peer && !std::filesystem::exists(model, ec)) {  // the full-size random model, made once
    std::vector<std::string> build = {"--build-only", "--model", model};
    synth_bench::run_peer(python, script, build, /*need_rate=*/false);
  }

  std::vector<synth_bench::Row> rows;
  {
    auto sd = std::make_unique<synth::StableDiffusion>(model, device,
                                                       dtype_name == "fp16" ? torch::kFloat16 : torch::kFloat32);
    std::printf("synthstream: model %s, %s %lld steps, guidance %.1f, %s %s, %d threads, 1 warm-up + %d timed%s\n",
                model.c_str(), o.scheduler.c_str(), (long long)o.steps, o.guidance, device_name.c_str(),
                dtype_name.c_str(), torch::get_num_threads(), reps, flush_denormal ? ", denormals flushed" : "");
    std::printf("%10s %6s %12s %12s %12s\n", "size", "batch", "images/s", "s/image", "of floor");
    for (const auto& [w, h] : sizes) {
      o.width = w;
      o.height = h;
      for (const int64_t b : batches) {
        std::vector<std::string> prompts(size_t(b), "a photo of a papillon, toy spaniel");
        std::vector<uint64_t> idx;
        for (int64_t i = 0; i < b; ++i) idx.push_back(uint64_t(i));
        const auto noise = sd->initial_noise(idx, 0, o.width, o.height);
        sd->sample(prompts, noise, o);  // warm-up (allocator, cuDNN autotuning, embeddings cached)
        sync(device);
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < reps; ++r) sd->sample(prompts, noise, o);
        sync(device);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
        const double ips = double(b) / s;
        const std::string size = std::to_string(w) + "x" + std::to_string(h);
        std::printf("%10s %6lld %12.4f %12.3f %11.1f%%\n", size.c_str(), (long long)b, ips, s / double(b),
                    floor_ips > 0 ? 100 * ips / floor_ips : 0.0);
        std::fflush(stdout);
        rows.push_back({size + " batch " + std::to_string(b), ips, 0});
      }
    }
  }  // our model is freed before the peer loads its copy

  if (peer) {
    const std::vector<double> theirs = synth_bench::run_peer(python, script, peer_args);
    if (theirs.size() != rows.size())
      throw std::runtime_error("the peer printed " + std::to_string(theirs.size()) + " rates for " +
                               std::to_string(rows.size()) + " rows");
    std::printf("%-24s %12s %12s %8s\n", "synthstream / diffusers", "ours", "theirs", "ratio");
    for (size_t i = 0; i < rows.size(); ++i) {
      rows[i].theirs = theirs[i];
      std::printf("%-24s %12.4f %12.4f %7.3fx\n", rows[i].what.c_str(), rows[i].ours, rows[i].theirs,
                  rows[i].ours / rows[i].theirs);
    }
  }
  if (!json.empty())
    synth_bench::write_json(json, "bench_sampler", peer ? "diffusers StableDiffusionPipeline" : "",
                            {{"model", model}, {"scheduler", o.scheduler}, {"steps", std::to_string(o.steps)},
                             {"guidance", std::to_string(o.guidance)}, {"device", device_name}, {"dtype", dtype_name},
                             {"threads", std::to_string(torch::get_num_threads())}, {"reps", std::to_string(reps)},
                             {"warmup", "1"}, {"flush_denormal", flush_denormal ? "yes" : "no"}},
                            rows);
  return 0;
} catch (const std::exception& e) {
  std::string msg = e.what();
  std::fprintf(stderr, "bench_sampler: error: %s\n", msg.substr(0, msg.find('\n')).c_str());
  return 1;
}
