// stream-augment: see exactly what the trainer sees for one image of a run. Draws the DINO
// multi-crop parameters of stream index I (run.seed, augment.dino of the config), runs the CPU
// reference or the CUDA kernels, and writes into DIR:
//   global_<g>.png, local_<l>.png   every crop, de-normalized (x * std + mean, clamped, rounded)
//   crops.safetensors               `global` G x 3 x S x S and `local` L x 3 x s x s, float32,
//                                   after normalization
//   params.json                     the drawn parameters of every crop
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "app/cli.hpp"
#include "augment/dino_cpu.hpp"
#include "config/load.hpp"
#include "distributed/env.hpp"
#include "io/image.hpp"
#include "io/safetensors.hpp"
#ifdef SYNTH_WITH_CUDA
#include "augment/dino_gpu.hpp"
#endif

namespace {

constexpr const char* kUsage =
    "usage: stream-augment --config CFG --index I [--device cpu|cuda|cuda:N] --out DIR [--set section.key=value]... IMAGE\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";


// One normalized 3 x S x S crop back to an 8-bit image.
synth::ImageU8 to_png_image(const torch::Tensor& crop, const std::vector<double>& mean, const std::vector<double>& std) {
  const int64_t S = crop.size(1), n = S * S;
  const torch::Tensor c = crop.contiguous();
  const float* x = c.data_ptr<float>();
  synth::ImageU8 img;
  img.height = img.width = int(S);
  img.pixels.resize(img.bytes());
  for (int ch = 0; ch < 3; ++ch)
    for (int64_t i = 0; i < n; ++i) {
      const double v = double(x[ch * n + i]) * std[size_t(ch)] + mean[size_t(ch)];
      img.pixels[size_t(i) * 3 + size_t(ch)] = uint8_t(std::lround(std::min(1.0, std::max(0.0, v)) * 255.0));
    }
  return img;
}

int run(const synth::cli::Args& args) {
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.positional().size() != 1) throw synth::InputError(std::string("expected one IMAGE\n") + kUsage);
  for (const char* key : {"config", "index", "out"})
    if (!args.has(key)) throw synth::InputError(std::string("missing --") + key + "\n" + kUsage);
  const long long index = args.get_int("index", 0);
  if (index < 0) throw synth::InputError("--index must be >= 0, got " + std::to_string(index));
  // "cuda" is this process's LOCAL_RANK GPU, as for train.device (distributed/env.hpp).
  const torch::Device device = synth::resolve_device(args.get("device", "cpu"), "--device", synth::dist_env_from_process());
  synth::require_device(device, "--device", args.get("device", "cpu"));
  // Only [run] and [augment] are read, and the IMAGE given: no input path of the config is opened.
  const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
  const synth::DinoConfig& dino = cfg.augment.dino;
  const std::string image_path = args.positional()[0];
  const synth::ImageU8 image = synth::decode_image_file(image_path);
  const auto params = synth::draw_dino_params(dino, cfg.run.seed, uint64_t(index), image.height, image.width);

  torch::Tensor global, local;
  if (device.is_cpu()) {
    const synth::DinoBatch b = synth::dino_augment_cpu_with(dino, cfg.augment.mean, cfg.augment.std, {&image}, {params});
    global = b.global;
    local = b.local;
  } else {
#ifdef SYNTH_WITH_CUDA
    const synth::DinoGpuBatch b =
        synth::dino_augment_gpu(dino, cfg.augment.mean, cfg.augment.std, {&image}, {params}, torch::kFloat32, device);
    global = b.global.to(torch::kCPU).contiguous();
    local = b.local.to(torch::kCPU).contiguous();
#else
    throw synth::InputError("--device cuda needs the CUDA build (-DSYNTH_CUDA=ON)");
#endif
  }

  const std::string dir = args.get("out");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw synth::InputError("--out: cannot create '" + dir + "': " + ec.message());
  for (int64_t g = 0; g < global.size(0); ++g)
    synth::write_png(dir + "/global_" + std::to_string(g) + ".png", to_png_image(global[g], cfg.augment.mean, cfg.augment.std));
  for (int64_t l = 0; l < local.size(0); ++l)
    synth::write_png(dir + "/local_" + std::to_string(l) + ".png", to_png_image(local[l], cfg.augment.mean, cfg.augment.std));
  synth::save_safetensors(dir + "/crops.safetensors", {{"global", global}, {"local", local}},
                          {{"image", image_path}, {"index", std::to_string(index)}, {"device", device.str()}});
  nlohmann::json j = {{"image", image_path},      {"index", index},        {"seed", cfg.run.seed},
                      {"height", image.height},   {"width", image.width},  {"device", device.str()},
                      {"mean", cfg.augment.mean}, {"std", cfg.augment.std}};
  j["crops"] = nlohmann::json::array();
  for (const auto& p : params) {
    nlohmann::json c = synth::dino_params_json(p);
    c["png"] = p.crop < dino.global_crops ? "global_" + std::to_string(p.crop) + ".png"
                                          : "local_" + std::to_string(p.crop - dino.global_crops) + ".png";
    j["crops"].push_back(c);
  }
  const std::string json_path = dir + "/params.json", tmp = json_path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) throw synth::InputError("cannot write '" + tmp + "'");
  }
  std::filesystem::rename(tmp, json_path, ec);
  if (ec) throw synth::InputError("cannot rename '" + tmp + "' to '" + json_path + "': " + ec.message());
  std::printf("%s: %lld global + %lld local crops of image %lld -> %s\n", image_path.c_str(), (long long)global.size(0),
              (long long)local.size(0), index, dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-augment", [&] {
    const synth::cli::Args args(argc, argv, {"help"}, {"config", "index", "device", "out", "set"});
    return run(args);
  });
}
