// stream-bench CONFIG [--set section.key=value]... [--images N] [--steps N] [--json] [--generator-only]:
// measures, on the machine at hand, each stage of the stream that CONFIG describes - producers
// (SD generators or real-image decoders) into the ring, the trainer-side augmentation, and the
// training step - and derives the stream rate, the generator/trainer balance and what the whole
// run would cost.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/cli.hpp"
#include "augment/train_augment.hpp"
#include "config/load.hpp"
#include "data/batch_stream.hpp"
#include "distributed/env.hpp"
#include "generate/devices.hpp"
#include "generate/generator.hpp"
#include "run/progress.hpp"
#include "train/amp.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"
#include "train/train_step.hpp"
#include "train/trainer.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-bench CONFIG [--set section.key=value]... [--images N] [--steps N] [--json] [--generator-only]\n"
    "Measures images/s of each stage of the stream described by CONFIG on this machine: producers\n"
    "(generator or decoder) -> ring, augmentation, training step; then the stream rate, how many\n"
    "generator devices balance one trainer, and the wall time of the config's run.\n"
    "  --set k=v          override one key (TOML value); repeatable\n"
    "  --images N         images the producers make for the measurement (default: 4 generator\n"
    "                     batches for synthetic data, 4 training batches for real data)\n"
    "  --steps N          timed training steps (default 3, after one warm-up step)\n"
    "  --json             print one JSON object instead of a table\n"
    "  --generator-only   measure the producers alone\n"
    "  --help             this text\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Stage {
  std::string name;
  double images_per_s = 0;
  double seconds = 0;
  int64_t images = 0;
};

// A batch of produced images kept for the augmentation and training stages.
struct Kept {
  std::vector<std::vector<uint8_t>> pixels;
  std::vector<synth::SlotMeta> meta;
};

// 1. Producers -> ring over [first, end); keeps up to `keep` images. Returns the seconds taken.
double produce(const synth::Config& cfg, const synth::ImageSource& source, uint64_t first, uint64_t end, size_t keep,
               Kept* kept) {
  const size_t slot_bytes = size_t(cfg.ring.max_height) * size_t(cfg.ring.max_width) * 3;
  synth::Ring ring(size_t(cfg.ring.slots), slot_bytes);
  auto producer = source.make_producer(ring, synth::IndexSequence::range(first, end));
  const Clock::time_point t0 = Clock::now();
  producer->start();
  while (auto slot = ring.acquire_ready()) {
    if (kept && kept->pixels.size() < keep) {
      const synth::SlotMeta& m = ring.meta(*slot);
      kept->pixels.emplace_back(ring.data(*slot), ring.data(*slot) + size_t(m.height) * m.width * m.channels);
      kept->meta.push_back(m);
    }
    ring.release(*slot);
  }
  producer->join();
  return since(t0);
}

// 2. and 3. The trainer's augmentation of one training batch (the kept images, repeated to fill
// it) and the trainer's own step (train/train_step.hpp) on its crops, on the training device.
std::vector<Stage> augment_and_train(const synth::Config& cfg, const Kept& kept, long long steps) {
  std::vector<synth::ImageView> views;
  std::vector<int64_t> labels;
  const int64_t batch = cfg.train.batch_size;
  for (int64_t i = 0; i < batch; ++i) {
    const size_t k = size_t(i) % kept.pixels.size();
    const synth::SlotMeta& m = kept.meta[k];
    views.push_back(synth::ImageView{kept.pixels[k].data(), m.height, m.width, m.channels, uint64_t(i)});
    labels.push_back(m.label);
  }
  const torch::Device device = synth::train_device(cfg, synth::dist_env_from_process().local_rank);
  const torch::Dtype crop_dtype = synth::gpu_crop_dtype(cfg.train.precision);
  const auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  const auto augment = [&] {
    auto g = synth::augment_batch(cfg, cfg.run.seed, views, labels, device, crop_dtype);
    sync();
    return g;
  };
  std::vector<Stage> stages;
  std::vector<synth::CropGroup> groups = augment();
  Clock::time_point t0 = Clock::now();
  for (long long s = 0; s < steps; ++s) groups = augment();
  double sec = since(t0);
  stages.push_back({"augment", double(steps * batch) / sec, sec, steps * batch});

  synth::ResNet model(synth::ResNetSpec{cfg.model.arch, cfg.model.width, cfg.model.num_classes});
  model->to(device);
  const bool channels_last = device.is_cuda();
  if (channels_last) synth::to_channels_last(model);
  auto sgd = synth::make_sgd(*model, cfg.optim);
  const synth::Precision precision = synth::parse_precision(cfg.train.precision);
  synth::LossScaler scaler(precision == synth::Precision::kFp16);
  synth::TrainStep step(model, *sgd, scaler, nullptr, device, precision, cfg.optim.label_smoothing, channels_last);
  int64_t crops = 0;
  for (const synth::CropGroup& g : groups) crops += g.images.size(0);
  // The peak rate of the run's schedule (lr scaled by batch / 256), as the trainer computes it.
  const double lr = synth::LrSchedule::from_config(cfg.optim, batch, 1).peak;
  step(groups, double(crops), lr);
  sync();
  t0 = Clock::now();
  for (long long s = 0; s < steps; ++s) step(groups, double(crops), lr);
  sync();
  sec = since(t0);
  stages.push_back({"train", double(steps * batch) / sec, sec, steps * batch});
  return stages;
}

// The stream: stages on separate devices run concurrently (rate = slowest stage); sharing one
// device they take turns (rate = 1 / sum of per-image times).
void report(const synth::Config& cfg, const synth::ImageSource& source, const std::vector<Stage>& stages, bool json) {
  const bool synthetic = cfg.data.source == "synthetic";
  double slowest = stages[0].images_per_s, per_image = 0;
  for (const Stage& s : stages) {
    slowest = std::min(slowest, s.images_per_s);
    per_image += 1.0 / s.images_per_s;
  }
  const double shared = 1.0 / per_image;
  const double trainer = stages.size() > 2 ? stages[2].images_per_s : 0;
  const double balance = trainer > 0 ? trainer / stages[0].images_per_s : 0;  // producers per trainer
  const double total = double(cfg.train.total_images);
  if (json) {
    nlohmann::json j = {{"config", cfg.source_file},
                        {"source", source.name},
                        {"stream_images_per_s_pipelined", slowest},
                        {"stream_images_per_s_shared_device", shared},
                        {"producers_per_trainer", balance},
                        {"run_images", cfg.train.total_images},
                        {"run_seconds_shared_device", total / shared}};
    for (const Stage& s : stages)
      j["stages"].push_back({{"stage", s.name}, {"images_per_s", s.images_per_s}, {"seconds", s.seconds}, {"images", s.images}});
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("stream-bench %s: %s\n", cfg.source_file.c_str(), source.name.c_str());
  std::printf("%-10s %12s %10s %10s\n", "stage", "images/s", "images", "seconds");
  for (const Stage& s : stages)
    std::printf("%-10s %12.2f %10lld %10.2f\n", s.name.c_str(), s.images_per_s, (long long)s.images, s.seconds);
  std::printf("stream: %.2f images/s with every stage on its own device, %.2f images/s on one shared device\n", slowest,
              shared);
  if (balance > 0)
    std::printf("balance: %.3g %s devices per trainer device keep the trainer busy\n", balance,
                synthetic ? "generator" : "decoder");
  std::printf("run: %s images take %s on one shared device like this one (%s device-hours with %.3g producer devices "
              "per trainer)\n",
              synth::format_count(uint64_t(total)).c_str(), synth::format_duration(total / shared).c_str(),
              synth::format_si(balance > 0 ? total / trainer * (1 + balance) / 3600.0 : total / slowest / 3600.0).c_str(),
              balance);
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-bench", [&] {
    const synth::cli::Args args(argc, argv, {"help", "json", "generator-only"}, {"set", "images", "steps"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.positional().size() != 1)
      throw synth::InputError(args.positional().empty() ? "missing CONFIG file (see --help)"
                                                        : "unexpected argument '" + args.positional()[1] + "'");
    const synth::Config cfg = synth::load_config(args.positional()[0], args.all("set"));
    synth::check_trainable(cfg);
    if (cfg.train.threads > 0) torch::set_num_threads(cfg.train.threads);
    const bool synthetic = cfg.data.source == "synthetic";
    const long long images_arg = args.get_int("images", synthetic ? 4 * cfg.generator.batch_size : 4 * cfg.train.batch_size);
    const long long steps = args.get_int("steps", 3);
    if (images_arg < 1) throw synth::InputError("--images must be >= 1");
    if (steps < 1) throw synth::InputError("--steps must be >= 1");
    const uint64_t n = uint64_t(images_arg);

    const synth::TrainingSource opened = synth::open_training_source(cfg);
    const synth::ImageSource& source = opened.source;
    // A warm-up range (one generator batch) first, outside the timing, so one-time costs (prompt
    // embeddings, allocator growth) do not count.
    const uint64_t warm = synthetic ? uint64_t(cfg.generator.batch_size) : uint64_t(cfg.train.batch_size);
    produce(cfg, source, 1ull << 40, (1ull << 40) + warm, 0, nullptr);
    Kept kept;
    const double produce_s = produce(cfg, source, 0, n, size_t(cfg.train.batch_size), &kept);
    std::vector<Stage> stages = {{synthetic ? "generate" : "decode", double(n) / produce_s, produce_s, int64_t(n)}};
    if (!args.has("generator-only"))
      for (const Stage& s : augment_and_train(cfg, kept, steps)) stages.push_back(s);
    report(cfg, source, stages, args.has("json"));
    return 0;
  });
}
