#include "train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "augment/train_augment.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/image.hpp"
#include "run/run_dir.hpp"
#include "run/progress.hpp"
#include "stream/batcher.hpp"
#include "stream/ledger.hpp"
#include "stream/ring.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"

namespace synth {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Steps between two metrics.jsonl training lines (the loss is averaged over them).
constexpr int64_t kMetricsEverySteps = 10;

// True when a period boundary (multiple of `every`) lies in (before, after].
bool crossed(uint64_t before, uint64_t after, int64_t every) {
  return every > 0 && after / uint64_t(every) > before / uint64_t(every);
}

// The sample sheets of one batch (run.sample_every_images): the first 16 images as they came out
// of the ring, their first-size crops de-normalized, and a text file naming each image.
void write_samples(const fs::path& dir, uint64_t images_seen, const std::vector<ImageView>& views,
                   const std::vector<int64_t>& labels, const CropGroup& crops, const Config& cfg,
                   const ImageSource& source) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create '" + dir.string() + "': " + ec.message());
  const size_t n = std::min<size_t>(16, views.size());
  std::vector<ImageU8> streamed, crop_images;
  std::string text = "index\tlabel\timage\n";
  for (size_t i = 0; i < n; ++i) {
    const ImageView& v = views[i];
    streamed.push_back(copy_image(v));
    text += std::to_string(v.index) + "\t" + std::to_string(labels[i]) + "\t" +
            (source.describe ? source.describe(v.index) : std::string()) + "\n";
  }
  // Crops are image-major, so the first crops belong to the first images.
  const int64_t per_image = crops.images.size(0) / int64_t(views.size());
  const int64_t shown = std::min<int64_t>(crops.images.size(0), int64_t(n) * per_image);
  const torch::Tensor mean = torch::tensor(cfg.augment.mean, torch::kFloat32).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor(cfg.augment.std, torch::kFloat32).view({1, 3, 1, 1});
  const torch::Tensor u8 = ((crops.images.slice(0, 0, shown).to(torch::kFloat32) * std + mean) * 255.0)
                               .round()
                               .clamp(0, 255)
                               .to(torch::kUInt8)
                               .permute({0, 2, 3, 1})
                               .contiguous();
  for (int64_t i = 0; i < shown; ++i) {
    ImageU8 im;
    im.height = int(u8.size(1));
    im.width = int(u8.size(2));
    im.pixels.assign(u8[i].data_ptr<uint8_t>(), u8[i].data_ptr<uint8_t>() + im.bytes());
    crop_images.push_back(std::move(im));
  }
  char stem[32];
  std::snprintf(stem, sizeof stem, "%012llu", (unsigned long long)images_seen);
  write_png((dir / ("stream-" + std::string(stem) + ".png")).string(), contact_sheet(streamed));
  write_png((dir / ("crops-" + std::string(stem) + ".png")).string(), contact_sheet(crop_images, int(std::max<int64_t>(per_image, 8))));
  write_file_atomic(dir / ("stream-" + std::string(stem) + ".txt"), text);
}

}  // namespace

void check_trainable(const Config& cfg) {
  if (cfg.train.precision != "fp32")
    throw InputError(cfg.source_file + ": train.precision = \"" + cfg.train.precision + "\": mixed precision is not wired into the trainer yet; use fp32");
  if (cfg.train.device == "cuda" && !torch::cuda::is_available())
    throw InputError(cfg.source_file + ": train.device = \"cuda\" but this build/machine has no CUDA device; use cpu");
}

TrainSummary run_training(const Config& cfg, const ImageSource& source, const std::string& run_dir, bool resume,
                          const TrainHooks& hooks) {
  const Clock::time_point t0 = Clock::now();
  auto log = [&](const std::string& line) {
    if (hooks.log) hooks.log(line);
  };
  auto metric = [&](const nlohmann::json& j) {
    if (hooks.metrics) hooks.metrics(j);
  };
  check_trainable(cfg);
  if (cfg.train.threads > 0) torch::set_num_threads(cfg.train.threads);
  const torch::Device device(cfg.train.device == "cuda" ? torch::kCUDA : torch::kCPU);
  const uint64_t seed = cfg.run.seed;
  const uint64_t total = uint64_t(cfg.train.total_images);
  const int64_t batch = cfg.train.batch_size;
  const int64_t total_steps = int64_t((total + uint64_t(batch) - 1) / uint64_t(batch));

  if (source.num_classes > cfg.model.num_classes)
    throw InputError("model.num_classes = " + std::to_string(cfg.model.num_classes) + " but " + source.name + " has " +
                     std::to_string(source.num_classes) + " classes");

  // Initialization is drawn from torch's generator seeded by a counter-based key of the run seed.
  CounterRng init_rng(seed, 0, RngPurpose::kInit, 0);
  torch::manual_seed(init_rng.next_u64());
  ResNet model(ResNetSpec{cfg.model.arch, cfg.model.width, cfg.model.num_classes});
  model->to(device);
  std::unique_ptr<torch::optim::SGD> optimizer = make_sgd(*model, cfg.optim);
  const LrSchedule schedule = LrSchedule::from_config(cfg.optim, batch, total_steps);

  const fs::path ckpt_dir = fs::path(run_dir) / "checkpoints";
  TrainState state;
  state.seed = seed;
  state.arch = cfg.model.arch;
  state.width = cfg.model.width;
  state.num_classes = cfg.model.num_classes;
  Ledger ledger;
  if (resume) {
    const std::vector<fs::path> found = list_checkpoints(ckpt_dir);
    if (found.empty()) {
      log("resume: no checkpoint in " + ckpt_dir.string() + ", starting from image 0");
    } else {
      state = load_checkpoint(found.back(), *model, optimizer.get(), cfg.model.arch, cfg.model.width, cfg.model.num_classes);
      if (state.seed != seed)
        throw InputError("checkpoint '" + found.back().string() + "' was trained with run.seed = " + std::to_string(state.seed) +
                         ", the config says " + std::to_string(seed) + " (a different stream)");
      try {
        ledger = Ledger::deserialize(state.ledger);
      } catch (const InputError& e) {
        throw InputError("checkpoint '" + found.back().string() + "': " + e.what());
      }
      log("resume: " + found.back().filename().string() + " at step " + std::to_string(state.step) + ", " +
          format_count(state.images_seen) + " images");
    }
  }

  TrainSummary summary;
  const uint64_t start_images = state.images_seen;
  const Classifier classify = [&](const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    return model->forward(x.to(device)).to(torch::kCPU);
  };
  auto evaluate = [&] {
    if (!hooks.evaluate) return;
    const Clock::time_point te = Clock::now();
    model->eval();
    const std::vector<EvalResult> results = hooks.evaluate(classify);
    model->train();
    for (const EvalResult& r : results) {
      char line[256];
      std::snprintf(line, sizeof line, "eval %s at %s images: top-1 %.2f%%, top-5 %.2f%% (%lld images, %.1fs)",
                    r.set.c_str(), format_count(state.images_seen).c_str(), 100 * r.top1, 100 * r.top5,
                    (long long)r.images, seconds_since(te));
      log(line);
      metric({{"event", "eval"}, {"step", state.step}, {"images", state.images_seen}, {"set", r.set},
              {"eval_images", r.images}, {"top1", r.top1}, {"top5", r.top5}});
      summary.last_eval = r;
    }
  };
  auto checkpoint = [&] {
    state.ledger = ledger.serialize();
    const fs::path file = save_checkpoint(ckpt_dir, state, *model, *optimizer, cfg.train.keep_checkpoints);
    log("checkpoint " + file.filename().string());
    metric({{"event", "checkpoint"}, {"step", state.step}, {"images", state.images_seen}, {"file", file.string()}});
  };

  if (state.images_seen < total) {
    const size_t slot_bytes = size_t(cfg.ring.max_height) * size_t(cfg.ring.max_width) * 3;
    Ring ring(size_t(cfg.ring.slots), slot_bytes);
    const std::unique_ptr<Producer> producer = source.make_producer(ring, state.images_seen, total);
    OrderedBatcher batcher(ring, batch, state.images_seen, total);
    producer->start();
    log("training " + cfg.model.arch + " (width " + format_si(cfg.model.width) + ", " +
        std::to_string(cfg.model.num_classes) + " classes) on " + format_count(total - state.images_seen) +
        " images of " + source.name + ", " + std::to_string(total_steps - state.step) + " steps of " +
        std::to_string(batch) + ", peak lr " + format_si(schedule.peak));

    Progress progress(total, state.images_seen, cfg.run.progress_seconds);
    const Clock::time_point t_train = Clock::now();
    double loss_sum = 0;
    int64_t loss_steps = 0;
    std::vector<ImageView> views;
    std::vector<int64_t> labels;
    model->train();
    while (true) {
      std::optional<std::vector<int>> slots;
      try {
        slots = batcher.next();
      } catch (...) {
        // A producer error closes the ring mid-batch; report the producer's cause (a corrupt file)
        // rather than the batcher's symptom.
        ring.close();
        producer->join();
        throw;
      }
      if (!slots) break;
      views.clear();
      labels.clear();
      for (int s : *slots) {
        const SlotMeta& m = ring.meta(s);
        views.push_back(ImageView{ring.data(s), m.height, m.width, m.channels, m.index});
        labels.push_back(m.label);
        ledger.record(m.index);
      }
      std::vector<CropGroup> groups;
      try {
        groups = augment_batch(cfg, seed, views, labels);
      } catch (...) {
        for (int s : *slots) ring.release(s);
        throw;
      }
      if (crossed(state.images_seen, state.images_seen + slots->size(), cfg.run.sample_every_images)) {
        try {
          write_samples(fs::path(run_dir) / "samples", state.images_seen + slots->size(), views, labels, groups[0], cfg,
                        source);
        } catch (...) {
          for (int s : *slots) ring.release(s);
          throw;
        }
      }
      for (int s : *slots) ring.release(s);

      const double lr = schedule.at(state.step);
      set_lr(*optimizer, lr);
      optimizer->zero_grad();
      // Cross-entropy averaged over every crop of every image: each size group's mean weighted by
      // its share of the crops (one forward per crop size, as DINO does).
      int64_t crops = 0;
      for (const CropGroup& g : groups) crops += g.images.size(0);
      torch::Tensor loss;
      for (const CropGroup& g : groups) {
        const torch::Tensor part = torch::nn::functional::cross_entropy(
            model->forward(g.images.to(device)), g.labels.to(device),
            torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(cfg.optim.label_smoothing)) *
            (double(g.images.size(0)) / double(crops));
        loss = loss.defined() ? loss + part : part;
      }
      loss.backward();
      optimizer->step();
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value))
        throw Error("training diverged: loss is " + std::to_string(loss_value) + " at step " + std::to_string(state.step) +
                    " (lower optim.lr?)");
      const uint64_t before = state.images_seen;
      state.step += 1;
      state.images_seen += uint64_t(slots->size());
      loss_sum += loss_value;
      loss_steps += 1;

      const double elapsed = seconds_since(t_train);
      if (state.step % kMetricsEverySteps == 0 || state.images_seen >= total) {
        metric({{"step", state.step},
                {"images", state.images_seen},
                {"loss", loss_sum / double(loss_steps)},
                {"lr", lr},
                {"images_per_s", progress.rate(state.images_seen, elapsed)},
                {"ring_occupancy", ring.ready_count()},
                {"ring_slots", ring.slots()}});
        loss_sum = 0;
        loss_steps = 0;
      }
      if (progress.due(elapsed)) {
        char tail[128];
        std::snprintf(tail, sizeof tail, ", step %lld/%lld, loss %.4f, lr %.4g, ring %zu/%zu", (long long)state.step,
                      (long long)total_steps, loss_value, lr, ring.ready_count(), ring.slots());
        log(progress.line(state.images_seen, elapsed) + tail);
      }
      const bool last = state.images_seen >= total;
      if (!last && crossed(before, state.images_seen, cfg.eval.every_images)) evaluate();
      if (!last && crossed(before, state.images_seen, cfg.train.checkpoint_every_images)) checkpoint();
      if (!last && hooks.stop_requested && hooks.stop_requested()) {
        summary.interrupted = true;
        break;
      }
    }
    if (summary.interrupted) ring.close();  // producers stop; what they made but was not trained is not in the ledger
    producer->join();
    summary.seconds = seconds_since(t_train);
    summary.images_produced = producer->produced();
    if (!summary.interrupted) {
      if (state.images_seen < total)
        throw Error("the stream ended at image " + std::to_string(state.images_seen) + " of " + std::to_string(total));
      const RingStats rs = ring.stats();
      log("ring: trainer waited " + format_duration(rs.consumer_wait_s) + " for images, producers waited " +
          format_duration(rs.producer_wait_s) + " for free slots" +
          (producer->skipped() ? ", " + std::to_string(producer->skipped()) + " corrupt items skipped" : ""));
    }
    checkpoint();
    if (summary.interrupted) log("interrupted at " + format_count(state.images_seen) + " images; --resume continues from here");
  }
  if (!summary.interrupted) evaluate();

  summary.steps = state.step;
  summary.images_trained = state.images_seen - start_images;
  summary.duplicates = ledger.duplicates();
  summary.gaps = ledger.gap_count(state.images_seen);
  summary.images_seen = state.images_seen;
  summary.exactly_once = ledger.exactly_once(state.images_seen);
  if (summary.seconds == 0) summary.seconds = seconds_since(t0);
  return summary;
}

}  // namespace synth
