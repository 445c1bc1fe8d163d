#include "train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <vector>

#include <c10/core/DeviceGuard.h>

#include "augment/train_augment.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "distributed/grad_reducer.hpp"
#include "io/image.hpp"
#include "run/run_dir.hpp"
#include "run/progress.hpp"
#include "stream/batcher.hpp"
#include "stream/ledger.hpp"
#include "stream/ring.hpp"
#include "stream/shard.hpp"
#include "sources/devices.hpp"
#include "sources/remote.hpp"
#include "train/amp.hpp"
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
  const torch::Tensor u8 = ((crops.images.slice(0, 0, shown).to(torch::kCPU, torch::kFloat32) * std + mean) * 255.0)
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

// Job-wide ledger accounting over the trainer ranks. Every rank restored the same checkpoint
// ledger (`base`, exactly [0, origin)) and recorded only indices of its own shard (the batcher
// rejects others), so the shards being disjoint, no duplicate on any rank plus a total count of
// `position` proves that [0, position) was trained on exactly once job-wide.
struct LedgerTotals {
  uint64_t distinct = 0, duplicates = 0;
};

// Sums a few scalars over the group, on `device` (NCCL reduces GPU tensors only).
std::vector<double> sum_over(Comm& group, const std::vector<double>& values, const torch::Device& device) {
  torch::Tensor t = torch::tensor(values, torch::kFloat64).to(device);
  group.all_reduce_sum(t);
  t = t.cpu();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

LedgerTotals ledger_totals(const Ledger& ledger, uint64_t base_count, Comm* group, const torch::Device& device) {
  if (!group) return {ledger.count(), ledger.duplicates()};
  // Counts below 2^53 are exact in a double.
  const std::vector<double> t = sum_over(*group, {double(ledger.count() - base_count), double(ledger.duplicates())}, device);
  return {base_count + uint64_t(t[0]), uint64_t(t[1])};
}

// This rank's training device (train.device resolved with its LOCAL_RANK), checked to exist;
// InputErrors name the config file and the key.
torch::Device usable_train_device(const Config& cfg, int local_rank) {
  try {
    const torch::Device device = train_device(cfg, local_rank);
    require_device(device, "train.device", cfg.train.device);
    return device;
  } catch (const InputError& e) {
    throw InputError(with_context(cfg.source_file, e.what()));
  }
}

}  // namespace

void check_trainable(const Config& cfg) {
  if (cfg.train.precision == "fp16" && !is_cuda_spec(cfg.train.device))
    throw InputError(cfg.source_file + ": train.precision = \"fp16\" needs train.device = \"cuda\" (on the CPU, autocast "
                     "computes in bf16: use \"bf16\" or \"fp32\")");
  // Called before the job exists: the process's own environment gives its LOCAL_RANK.
  usable_train_device(cfg, dist_env_from_process().local_rank);
}

TrainSummary run_training(const Config& cfg, const ImageSource& source, const std::string& run_dir, bool resume,
                          const TrainHooks& hooks, const Job& job) {
  const Clock::time_point t0 = Clock::now();
  auto log = [&](const std::string& line) {
    if (hooks.log) hooks.log(line);
  };
  auto metric = [&](const nlohmann::json& j) {
    if (hooks.metrics) hooks.metrics(j);
  };
  check_trainable(cfg);
  if (cfg.train.threads > 0) torch::set_num_threads(cfg.train.threads);
  // One GPU per process: "cuda" is the launcher's LOCAL_RANK, "cuda:N" GPU N. It is the current
  // device of this thread for the whole run, so NCCL, the caching allocator and any kernel
  // launched without a tensor argument use it too.
  const torch::Device device = usable_train_device(cfg, job.local_rank());
  c10::OptionalDeviceGuard device_guard;
  if (device.is_cuda()) device_guard.reset_device(device);
  const uint64_t seed = cfg.run.seed;
  const uint64_t total = uint64_t(cfg.train.total_images);
  const int64_t batch = cfg.train.batch_size;
  const int64_t total_steps = int64_t((total + uint64_t(batch) - 1) / uint64_t(batch));

  if (source.num_classes > cfg.model.num_classes)
    throw InputError("model.num_classes = " + std::to_string(cfg.model.num_classes) + " but " + source.name + " has " +
                     std::to_string(source.num_classes) + " classes");

  // Initialization is drawn from torch's generator seeded by a counter-based key of the run seed.
  if (!job.trainer()) throw Error("run_training called on generator rank " + std::to_string(job.rank()));
  Comm* const group = job.trainer_group();
  ResNet model{nullptr};
  {
    // torch's default generator is process-wide: trainers sharing a process (tests run ranks as
    // threads) must not interleave their draws between seeding and the last initializer.
    static std::mutex init_mutex;
    std::lock_guard<std::mutex> lock(init_mutex);
    CounterRng init_rng(seed, 0, RngPurpose::kInit, 0);
    torch::manual_seed(init_rng.next_u64());
    model = ResNet(ResNetSpec{cfg.model.arch, cfg.model.width, cfg.model.num_classes});
  }
  model->to(device);
  model->set_sync_group(cfg.dist.sync_batch_norm ? group : nullptr);
  // GPUs: channels-last (NHWC) weights and inputs, the layout cuDNN's fp16/bf16 convolutions are
  // fastest in; the model's state_dict keys and values are unchanged.
  const bool channels_last = device.is_cuda();
  if (channels_last) {
    torch::NoGradGuard no_grad;
    for (torch::Tensor p : model->parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  }
  const Precision precision = parse_precision(cfg.train.precision);
  const torch::Dtype crop_dtype = gpu_crop_dtype(cfg.train.precision);
  LossScaler scaler(precision == Precision::kFp16);
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
    // The newest intact checkpoint: a damaged newer one is skipped with a warning line, and the
    // images after the one loaded are trained again (they are not in its ledger).
    const Resumed found = load_newest_checkpoint(ckpt_dir, *model, optimizer.get(), cfg.model.arch, cfg.model.width,
                                                 cfg.model.num_classes, log);
    if (found.file.empty()) {
      log("resume: no checkpoint in " + ckpt_dir.string() + ", starting from image 0");
    } else {
      state = found.state;
      if (state.seed != seed)
        throw InputError("checkpoint '" + found.file.string() + "' was trained with run.seed = " + std::to_string(state.seed) +
                         ", the config says " + std::to_string(seed) + " (a different stream)");
      try {
        ledger = Ledger::deserialize(state.ledger);
      } catch (const InputError& e) {
        throw InputError("checkpoint '" + found.file.string() + "': " + e.what());
      }
      if (state.loss_scale > 0) scaler.restore(state.loss_scale, state.loss_scale_good_steps);
      log("resume: " + found.file.filename().string() + " at step " + std::to_string(state.step) + ", " +
          format_count(state.images_seen) + " images");
    }
  }
  if (group) {
    // Every trainer rank read the newest checkpoint of the shared run directory; they must agree.
    torch::Tensor where = torch::tensor({int64_t(state.images_seen)}, torch::kInt64).to(device);
    group->broadcast(where, 0);
    if (uint64_t(where.item<int64_t>()) != state.images_seen)
      throw Error("trainer rank " + std::to_string(job.trainer_rank()) + " resumes at image " +
                  std::to_string(state.images_seen) + " but rank 0 at " + std::to_string(where.item<int64_t>()) +
                  ": every rank must see the same run directory (" + run_dir + ")");
    // Same seed, same checkpoint: the weights agree already; the broadcast makes that a fact.
    torch::NoGradGuard no_grad;
    for (torch::Tensor t : model->parameters()) group->broadcast(t, 0);
    for (torch::Tensor t : model->buffers()) group->broadcast(t, 0);
  }
  // Dedicated generator ranks start where the (possibly resumed) run stands.
  if (job.generators() > 0 && job.lead()) job.rendezvous()->set("origin", std::to_string(state.images_seen));
  const uint64_t base_count = ledger.count();
  std::unique_ptr<GradReducer> reducer;
  if (group) reducer = std::make_unique<GradReducer>(model->parameters(), *group, size_t(cfg.dist.bucket_mb) << 20);
  if (group) {
    // Every rank scores its share of the evaluation sets: one rank without the hook would leave
    // the others waiting in the sum of the counts.
    const double with_hook = sum_over(*group, {hooks.evaluate ? 1.0 : 0.0}, device)[0];
    if (with_hook != 0 && with_hook != double(group->size()))
      throw Error("trainer rank " + std::to_string(job.trainer_rank()) + ": " + std::to_string(int(with_hook)) + " of " +
                  std::to_string(group->size()) + " trainer ranks evaluate; every rank must score its share, or none");
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
    if (group) {
      // Rank 0's model is the one checkpointed; with per-rank batch norm (dist.sync_batch_norm =
      // false) the other ranks' running statistics differ from it. Training mode never reads them.
      torch::NoGradGuard no_grad;
      for (torch::Tensor t : model->buffers()) group->broadcast(t, 0);
    }
    std::vector<EvalResult> results = hooks.evaluate(classify);
    model->train();
    if (group && !results.empty()) {
      // Each rank scored its shard; counts below 2^53 are exact in a double.
      std::vector<double> counts;
      for (const EvalResult& r : results)
        for (const int64_t v : {r.images, r.top1_hits, r.top5_hits, r.skipped}) counts.push_back(double(v));
      const std::vector<double> total = sum_over(*group, counts, device);
      for (size_t i = 0; i < results.size(); ++i) {
        results[i].images = int64_t(total[4 * i]);
        results[i].top1_hits = int64_t(total[4 * i + 1]);
        results[i].top5_hits = int64_t(total[4 * i + 2]);
        results[i].skipped = int64_t(total[4 * i + 3]);
        results[i].set_fractions();
      }
    }
    summary.last_eval = results;
    for (const EvalResult& r : results) {
      char line[320];
      std::snprintf(line, sizeof line, "eval %s at %s images: top-1 %.2f%%, top-5 %.2f%% (%lld images%s, %.1fs)",
                    r.set.c_str(), format_count(state.images_seen).c_str(), 100 * r.top1, 100 * r.top5,
                    (long long)r.images,
                    r.skipped > 0 ? (", " + std::to_string(r.skipped) + " skipped").c_str() : "", seconds_since(te));
      log(line);
      metric({{"event", "eval"}, {"step", state.step}, {"images", state.images_seen}, {"set", r.set},
              {"eval_images", r.images}, {"eval_skipped", r.skipped}, {"top1", r.top1}, {"top5", r.top5}});
    }
  };
  auto checkpoint = [&] {
    state.loss_scale = scaler.enabled() ? scaler.value() : 0;
    state.loss_scale_good_steps = scaler.good_steps();
    if (group) {
      const LedgerTotals t = ledger_totals(ledger, base_count, group, device);
      if (t.duplicates != 0 || t.distinct != state.images_seen)
        throw Error("stream: at image " + std::to_string(state.images_seen) + " the trainer ranks recorded " +
                    std::to_string(t.distinct) + " distinct indices and " + std::to_string(t.duplicates) + " duplicates");
      state.ledger = "low=" + std::to_string(state.images_seen) + ";dup=0;sparse=";
    } else {
      state.ledger = ledger.serialize();
    }
    if (!job.lead()) return;
    const fs::path file = save_checkpoint(ckpt_dir, state, *model, *optimizer, cfg.train.keep_checkpoints);
    log("checkpoint " + file.filename().string());
    metric({{"event", "checkpoint"}, {"step", state.step}, {"images", state.images_seen}, {"file", file.string()}});
  };

  if (state.images_seen < total) {
    const size_t slot_bytes = size_t(cfg.ring.max_height) * size_t(cfg.ring.max_width) * 3;
    Ring ring(size_t(cfg.ring.slots), slot_bytes);
    const StreamShard shard(state.images_seen, total, batch, job.trainer_rank(), job.trainers());
    std::unique_ptr<Producer> producer;
    if (job.generators() > 0) {
      const FeedPlan plan{job.trainers(), job.generators(), job.trainer_rank(), cfg.generator.batch_size};
      producer = std::make_unique<RemoteProducer>(*job.world(), ring, shard, plan);
      log("fed by " + std::to_string(plan.feeders()) + " dedicated generator rank(s)");
    } else {
      producer = source.make_producer(ring, IndexSequence::of(shard));
    }
    OrderedBatcher batcher(ring, shard);
    producer->start();
    if (job.trainers() > 1)
      log(std::to_string(job.trainers()) + " trainer ranks, " + std::to_string(batch / job.trainers()) +
          " images each per step, gradients and batch norm synchronized over " + group->backend());
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
        groups = augment_batch(cfg, seed, views, labels, device, crop_dtype);
      } catch (...) {
        for (int s : *slots) ring.release(s);
        throw;
      }
      const uint64_t step_images = std::min<uint64_t>(uint64_t(batch), total - state.images_seen);  // job-wide
      if (job.lead() && crossed(state.images_seen, state.images_seen + step_images, cfg.run.sample_every_images)) {
        try {
          write_samples(fs::path(run_dir) / "samples", state.images_seen + step_images, views, labels, groups[0], cfg,
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
      // Cross-entropy averaged over every crop of every image of the global step (one forward per
      // crop size, as DINO does). Each rank sums over its own crops and divides by the job-wide
      // crop count, so the ranks' losses - and, summed by the reducer, their gradients - add up
      // to exactly the one-rank mean whatever the split.
      int64_t crops = 0;
      for (const CropGroup& g : groups) crops += g.images.size(0);
      const double global_crops = double(step_images) * double(crops / int64_t(slots->size()));
      torch::Tensor loss;
      {
        const AutocastScope autocast(precision, device.type());
        for (const CropGroup& g : groups) {
          torch::Tensor input = g.images.to(device);
          if (channels_last) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
          // Autocast runs cross-entropy (log-softmax) in fp32.
          const torch::Tensor part = torch::nn::functional::cross_entropy(
              model->forward(input), g.labels.to(device),
              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).label_smoothing(cfg.optim.label_smoothing));
          loss = loss.defined() ? loss + part : part;
        }
        loss = loss / global_crops;
      }
      if (reducer) reducer->prepare();
      scaler.scale(loss).backward();
      if (reducer) reducer->finish();
      // Gradients are complete and identical on every rank here, so every rank skips alike.
      const bool finite = !scaler.enabled() || scaler.unscale(model->parameters());
      if (finite) optimizer->step();
      if (!finite && scaler.enabled())
        metric({{"event", "skipped_step"}, {"step", state.step}, {"loss_scale", scaler.value()}});
      scaler.update(finite);
      double loss_value = loss.item<double>();
      const bool last_step = state.images_seen + step_images >= total;
      bool stop = !last_step && hooks.stop_requested && hooks.stop_requested();
      if (group) {
        // One small all-reduce: the job-wide loss, and a stop any rank asked for (ranks must stop
        // at the same step or the others would wait in the next collective).
        const std::vector<double> t = sum_over(*group, {loss_value, stop ? 1.0 : 0.0}, device);
        loss_value = t[0];
        stop = t[1] > 0;
      }
      if (!std::isfinite(loss_value))
        throw Error("training diverged: loss is " + std::to_string(loss_value) + " at step " + std::to_string(state.step) +
                    " (lower optim.lr?)");
      const uint64_t before = state.images_seen;
      state.step += 1;
      state.images_seen += step_images;
      loss_sum += loss_value;
      loss_steps += 1;

      const double elapsed = seconds_since(t_train);
      // The share of the run the trainer sat waiting for images: the stream's bottleneck measure
      // (0 when generation keeps up, near 1 when the trainer starves).
      const RingStats rs = ring.stats();
      const double trainer_stall = elapsed > 0 ? std::min(1.0, rs.consumer_wait_s / elapsed) : 0.0;
      if (state.step % kMetricsEverySteps == 0 || state.images_seen >= total) {
        metric({{"step", state.step},
                {"images", state.images_seen},
                {"loss", loss_sum / double(loss_steps)},
                {"lr", lr},
                {"images_per_s", progress.rate(state.images_seen, elapsed)},
                {"ring_occupancy", ring.ready_count()},
                {"ring_slots", ring.slots()},
                {"trainer_stall", trainer_stall},
                {"producer_wait_s", rs.producer_wait_s}});
        loss_sum = 0;
        loss_steps = 0;
      }
      if (progress.due(elapsed)) {
        char tail[160];
        std::snprintf(tail, sizeof tail, ", step %lld/%lld, loss %.4f, lr %.4g, ring %zu/%zu, trainer stalled %.0f%%",
                      (long long)state.step, (long long)total_steps, loss_value, lr, ring.ready_count(), ring.slots(),
                      100 * trainer_stall);
        log(progress.line(state.images_seen, elapsed) + tail);
      }
      const bool last = state.images_seen >= total;
      if (!last && crossed(before, state.images_seen, cfg.eval.every_images)) evaluate();
      if (!last && crossed(before, state.images_seen, cfg.train.checkpoint_every_images)) checkpoint();
      if (!last && stop) {
        summary.interrupted = true;
        break;
      }
    }
    if (summary.interrupted) ring.close();  // producers stop; what they made but was not trained is not in the ledger
    producer->join();
    summary.seconds = seconds_since(t_train);
    summary.images_produced = producer->produced();
    if (group) {
      summary.images_produced = uint64_t(sum_over(*group, {double(summary.images_produced)}, device)[0]);
    }
    if (!summary.interrupted) {
      if (state.images_seen < total)
        throw Error("the stream ended at image " + std::to_string(state.images_seen) + " of " + std::to_string(total));
      const RingStats rs = ring.stats();
      summary.trainer_stall = summary.seconds > 0 ? std::min(1.0, rs.consumer_wait_s / summary.seconds) : 0.0;
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
  summary.images_seen = state.images_seen;
  if (group) {
    const LedgerTotals t = ledger_totals(ledger, base_count, group, device);
    summary.duplicates = t.duplicates;
    summary.gaps = t.distinct < state.images_seen ? state.images_seen - t.distinct : 0;
    summary.exactly_once = t.duplicates == 0 && t.distinct == state.images_seen;
  } else {
    summary.duplicates = ledger.duplicates();
    summary.gaps = ledger.gap_count(state.images_seen);
    summary.exactly_once = ledger.exactly_once(state.images_seen);
  }
  if (summary.seconds == 0) summary.seconds = seconds_since(t0);
  return summary;
}

}  // namespace synth
