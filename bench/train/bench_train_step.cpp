// ResNet training step throughput: images/s of forward + backward + SGD at a batch size, for
// 224-only crops or the paper's DINO multi-crop (1x224 + 8x96 per image, one forward per crop
// size, loss over all crops), in fp32, bf16 or fp16 (autocast, dynamic loss scaling), channels-last
// on GPUs. Inputs are random tensors already on the device: this measures the trainer alone.
// With --peer, the same step in PyTorch eager (torchvision, bench/train/peer_train_step.py) runs
// after it on the same device, with the project venv's python (SYNTH_PYTHON), and the ratio is
// printed.
//
//   bench_train_step [--device cuda] [--precision fp16] [--batch 256] [--crops 224|multi]
//                    [--arch resnet50] [--steps 20] [--warmup 5] [--peer] [--json FILE]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "../peer.hpp"
#include "config/config.hpp"
#include "train/amp.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"
#include "train/train_step.hpp"

namespace {

struct Options {
  std::string device = "cpu", precision = "fp32", crops = "224", arch = "resnet50";
  int64_t batch = 256;
  int steps = 20, warmup = 5;
  bool peer = false;
  std::string json;  // --json FILE: the figures as JSON (bench/peer.hpp write_json)
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train_step: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") o.device = value();
    else if (a == "--precision") o.precision = value();
    else if (a == "--crops") o.crops = value();
    else if (a == "--arch") o.arch = value();
    else if (a == "--batch") o.batch = std::stoll(value());
    else if (a == "--steps") o.steps = std::stoi(value());
    else if (a == "--warmup") o.warmup = std::stoi(value());
    else if (a == "--peer") o.peer = true;
    else if (a == "--json") o.json = value();
    else {
      std::fprintf(stderr, "bench_train_step: unknown option %s (see the header of bench_train_step.cpp)\n", a.c_str());
      std::exit(2);
    }
  }
  if (o.crops != "224" && o.crops != "multi") {
    std::fprintf(stderr, "bench_train_step: --crops is 224 or multi\n");
    std::exit(2);
  }
  return o;
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    const std::string python = o.peer ? synth_bench::peer_python() : std::string();  // before the measurement, not after
    const torch::Device device(o.device == "cuda" ? torch::kCUDA : torch::kCPU);
    const synth::Precision precision = synth::parse_precision(o.precision);
    torch::manual_seed(0);
    synth::ResNet model(synth::ResNetSpec{o.arch, 1.0, 1000});
    model->to(device);
    const bool channels_last = device.is_cuda();
    if (channels_last) synth::to_channels_last(model);
    synth::OptimConfig oc;
    auto optimizer = synth::make_sgd(*model, oc);
    synth::LossScaler scaler(precision == synth::Precision::kFp16);
    // One batch per crop size, random values: kernels do not care about content.
    std::vector<synth::CropGroup> groups;
    auto add = [&](int64_t n, int64_t side) {
      torch::Tensor x = torch::randn({n, 3, side, side}, torch::TensorOptions().device(device));
      if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      groups.push_back({x, torch::randint(0, 1000, {n}, torch::TensorOptions().dtype(torch::kLong).device(device))});
    };
    add(o.batch, 224);
    if (o.crops == "multi") add(o.batch * 8, 96);
    const double crops = double(o.batch) * (o.crops == "multi" ? 9 : 1);
    model->train();
    // The trainer's own step (train/train_step.hpp), on one rank.
    synth::TrainStep train_step(model, *optimizer, scaler, nullptr, device, precision, oc.label_smoothing, channels_last);
    auto step = [&] { train_step(groups, crops, oc.lr); };
    for (int i = 0; i < o.warmup; ++i) step();
    sync(device);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.steps; ++i) step();
    sync(device);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = double(o.batch) * o.steps / s;
    std::printf("synthstream %s %s batch %lld, crops %s, %s: %.1f images/s (%.1f ms/step)\n", o.arch.c_str(),
                o.precision.c_str(), (long long)o.batch, o.crops == "multi" ? "1x224+8x96" : "224", o.device.c_str(), rate,
                1e3 * s / o.steps);
    double peer = 0;
    if (o.peer) {
      peer = synth_bench::run_peer(python, SYNTH_PEER_SCRIPT,
                                   {"--device", o.device, "--precision", o.precision, "--batch", std::to_string(o.batch),
                                    "--crops", o.crops, "--arch", o.arch, "--steps", std::to_string(o.steps),
                                    "--warmup", std::to_string(o.warmup)})
                 .back();
      std::printf("ratio synthstream / PyTorch eager: %.3f\n", rate / peer);
    }
    if (!o.json.empty())
      synth_bench::write_json(o.json, "bench_train_step", o.peer ? "torchvision eager (peer_train_step.py)" : "",
                              {{"arch", o.arch}, {"precision", o.precision}, {"batch", std::to_string(o.batch)},
                               {"crops", o.crops}, {"device", o.device}, {"steps", std::to_string(o.steps)},
                               {"warmup", std::to_string(o.warmup)}, {"threads", std::to_string(torch::get_num_threads())}},
                              {{o.arch + " " + o.precision + " batch " + std::to_string(o.batch), rate, peer}});
  } catch (const std::exception& e) {
    std::string msg = e.what();
    std::fprintf(stderr, "bench_train_step: error: %s\n", msg.substr(0, msg.find('\n')).c_str());
    return 1;
  }
  return 0;
}
