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
#include "generate/devices.hpp"
#include "generate/remote.hpp"
#include "io/image.hpp"
#include "run/progress.hpp"
#include "run/run_dir.hpp"
#include "stream/batcher.hpp"
#include "stream/ledger.hpp"
#include "stream/ring.hpp"
#include "stream/shard.hpp"
#include "train/amp.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"
#include "train/train_step.hpp"

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

namespace {

// One batch's ring slots as image views (the augmentation reads the slots in place), each index
// recorded in the ledger; the slots go back to the producers when this goes out of scope: after
// the crops and sample sheets are made, or on an exception.
struct SlotBatch {
  SlotBatch(Ring& ring, const std::vector<int>& slots, Ledger& ledger) : ring_(ring), slots_(slots) {
    for (int s : slots) {
      const SlotMeta& m = ring.meta(s);
      views.push_back(ImageView{ring.data(s), m.height, m.width, m.channels, m.index});
      labels.push_back(m.label);
      ledger.record(m.index);
    }
  }
  ~SlotBatch() {
    for (int s : slots_) ring_.release(s);
  }
  SlotBatch(const SlotBatch&) = delete;
  SlotBatch& operator=(const SlotBatch&) = delete;

  std::vector<ImageView> views;
  std::vector<int64_t> labels;

 private:
  Ring& ring_;
  const std::vector<int>& slots_;
};

// One trainer rank's run, in the order of the protocol: build the model (seeded initialization),
// find where the run stands (fresh or the newest intact checkpoint), agree with the other ranks,
// then stream: batch -> augment -> step, with evaluation and checkpoints at their periods.
class Training {
 public:
  Training(const Config& cfg, const ImageSource& source, const std::string& run_dir, const TrainHooks& hooks,
           const Job& job);
  TrainSummary run(bool resume);

 private:
  void log(const std::string& line) const {
    if (hooks_.log) hooks_.log(line);
  }
  void metric(const nlohmann::json& j) const {
    if (hooks_.metrics) hooks_.metrics(j);
  }
  void build_model();
  void restore(bool resume);
  void agree_across_ranks();
  void stream();
  void report(double loss, double lr, Progress& progress, const Ring& ring, Clock::time_point t_train);
  void evaluate();
  void checkpoint();
  void finish(TrainSummary& summary) const;

  const Config& cfg_;
  const ImageSource& source_;
  const std::string run_dir_;
  const TrainHooks& hooks_;
  const Job& job_;
  const Clock::time_point t0_ = Clock::now();
  const uint64_t seed_, total_;
  const int64_t batch_, total_steps_;
  const torch::Device device_;
  c10::OptionalDeviceGuard device_guard_;
  Comm* const group_;
  const Precision precision_;
  const bool channels_last_;
  ResNet model_{nullptr};
  LossScaler scaler_;
  std::unique_ptr<torch::optim::SGD> optimizer_;
  std::unique_ptr<GradReducer> reducer_;
  const LrSchedule schedule_;
  const fs::path ckpt_dir_;
  TrainState state_;
  Ledger ledger_;
  uint64_t base_count_ = 0, start_images_ = 0;
  double loss_sum_ = 0;
  int64_t loss_steps_ = 0;
  TrainSummary summary_;
};

Training::Training(const Config& cfg, const ImageSource& source, const std::string& run_dir, const TrainHooks& hooks,
                   const Job& job)
    : cfg_(cfg), source_(source), run_dir_(run_dir), hooks_(hooks), job_(job), seed_(cfg.run.seed),
      total_(uint64_t(cfg.train.total_images)), batch_(cfg.train.batch_size),
      total_steps_(int64_t((total_ + uint64_t(batch_) - 1) / uint64_t(batch_))),
      // One GPU per process: "cuda" is the launcher's LOCAL_RANK, "cuda:N" GPU N.
      device_(usable_train_device(cfg, job.local_rank())), group_(job.trainer_group()),
      precision_(parse_precision(cfg.train.precision)),
      // GPUs: channels-last (NHWC) weights and inputs, the layout cuDNN's fp16/bf16 convolutions
      // are fastest in; the model's state_dict keys and values are unchanged.
      channels_last_(device_.is_cuda()), scaler_(precision_ == Precision::kFp16),
      schedule_(LrSchedule::from_config(cfg.optim, batch_, total_steps_)),
      ckpt_dir_(fs::path(run_dir) / "checkpoints") {
  // The current device of this thread for the whole run, so NCCL, the caching allocator and any
  // kernel launched without a tensor argument use it too.
  if (device_.is_cuda()) device_guard_.reset_device(device_);
  if (source.num_classes > cfg.model.num_classes)
    throw InputError("model.num_classes = " + std::to_string(cfg.model.num_classes) + " but " + source.name + " has " +
                     std::to_string(source.num_classes) + " classes");
  if (!job.trainer()) throw Error("run_training called on generator rank " + std::to_string(job.rank()));
}

TrainSummary Training::run(bool resume) {
  build_model();
  restore(resume);
  agree_across_ranks();
  start_images_ = state_.images_seen;
  if (state_.images_seen < total_) stream();
  if (!summary_.interrupted) evaluate();
  TrainSummary summary = summary_;
  finish(summary);
  return summary;
}

void Training::build_model() {
  {
    // Initialization is drawn from torch's generator seeded by a counter-based key of the run
    // seed. That generator is process-wide: trainers sharing a process (tests run ranks as
    // threads) must not interleave their draws between seeding and the last initializer.
    static std::mutex init_mutex;
    std::lock_guard<std::mutex> lock(init_mutex);
    CounterRng init_rng(seed_, 0, RngPurpose::kInit, 0);
    torch::manual_seed(init_rng.next_u64());
    model_ = ResNet(ResNetSpec{cfg_.model.arch, cfg_.model.width, cfg_.model.num_classes});
  }
  model_->to(device_);
  model_->set_sync_group(cfg_.dist.sync_batch_norm ? group_ : nullptr);
  if (channels_last_) to_channels_last(model_);
  optimizer_ = make_sgd(*model_, cfg_.optim);
  state_.seed = seed_;
  state_.arch = cfg_.model.arch;
  state_.width = cfg_.model.width;
  state_.num_classes = cfg_.model.num_classes;
}

// With resume, the newest intact checkpoint: a damaged newer one is skipped with a warning line,
// and the images after the one loaded are trained again (they are not in its ledger).
void Training::restore(bool resume) {
  if (!resume) return;
  const auto logger = [this](const std::string& line) { log(line); };
  const Resumed found = load_newest_checkpoint(ckpt_dir_, *model_, optimizer_.get(), cfg_.model.arch, cfg_.model.width,
                                               cfg_.model.num_classes, logger);
  if (found.file.empty()) {
    log("resume: no checkpoint in " + ckpt_dir_.string() + ", starting from image 0");
    return;
  }
  state_ = found.state;
  if (state_.seed != seed_)
    throw InputError("checkpoint '" + found.file.string() + "' was trained with run.seed = " + std::to_string(state_.seed) +
                     ", the config says " + std::to_string(seed_) + " (a different stream)");
  try {
    ledger_ = Ledger::deserialize(state_.ledger);
  } catch (const InputError& e) {
    throw InputError("checkpoint '" + found.file.string() + "': " + e.what());
  }
  if (state_.loss_scale > 0) scaler_.restore(state_.loss_scale, state_.loss_scale_good_steps);
  log("resume: " + found.file.filename().string() + " at step " + std::to_string(state_.step) + ", " +
      format_count(state_.images_seen) + " images");
}

void Training::agree_across_ranks() {
  if (group_) {
    // Every trainer rank read the newest checkpoint of the shared run directory; they must agree.
    torch::Tensor where = torch::tensor({int64_t(state_.images_seen)}, torch::kInt64).to(device_);
    group_->broadcast(where, 0);
    if (uint64_t(where.item<int64_t>()) != state_.images_seen)
      throw Error("trainer rank " + std::to_string(job_.trainer_rank()) + " resumes at image " +
                  std::to_string(state_.images_seen) + " but rank 0 at " + std::to_string(where.item<int64_t>()) +
                  ": every rank must see the same run directory (" + run_dir_ + ")");
    // Same seed, same checkpoint: the weights agree already; the broadcast makes that a fact.
    torch::NoGradGuard no_grad;
    for (torch::Tensor t : model_->parameters()) group_->broadcast(t, 0);
    for (torch::Tensor t : model_->buffers()) group_->broadcast(t, 0);
  }
  // Dedicated generator ranks start where the (possibly resumed) run stands.
  if (job_.generators() > 0 && job_.lead()) job_.rendezvous()->set("origin", std::to_string(state_.images_seen));
  base_count_ = ledger_.count();
  if (!group_) return;
  reducer_ = std::make_unique<GradReducer>(model_->parameters(), *group_, size_t(cfg_.dist.bucket_mb) << 20);
  // Every rank scores its share of the evaluation sets: one rank without the hook would leave
  // the others waiting in the sum of the counts.
  const double with_hook = sum_over(*group_, {hooks_.evaluate ? 1.0 : 0.0}, device_)[0];
  if (with_hook != 0 && with_hook != double(group_->size()))
    throw Error("trainer rank " + std::to_string(job_.trainer_rank()) + ": " + std::to_string(int(with_hook)) + " of " +
                std::to_string(group_->size()) + " trainer ranks evaluate; every rank must score its share, or none");
}

void Training::evaluate() {
  if (!hooks_.evaluate) return;
  const Clock::time_point te = Clock::now();
  model_->eval();
  if (group_) {
    // Rank 0's model is the one checkpointed; with per-rank batch norm (dist.sync_batch_norm =
    // false) the other ranks' running statistics differ from it. Training mode never reads them.
    torch::NoGradGuard no_grad;
    for (torch::Tensor t : model_->buffers()) group_->broadcast(t, 0);
  }
  const Classifier classify = [this](const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    return model_->forward(x.to(device_)).to(torch::kCPU);
  };
  std::vector<EvalResult> results = hooks_.evaluate(classify);
  model_->train();
  if (group_ && !results.empty()) {
    // Each rank scored its shard; counts below 2^53 are exact in a double.
    std::vector<double> counts;
    for (const EvalResult& r : results)
      for (const int64_t v : {r.images, r.top1_hits, r.top5_hits, r.skipped}) counts.push_back(double(v));
    const std::vector<double> total = sum_over(*group_, counts, device_);
    for (size_t i = 0; i < results.size(); ++i) {
      results[i].images = int64_t(total[4 * i]);
      results[i].top1_hits = int64_t(total[4 * i + 1]);
      results[i].top5_hits = int64_t(total[4 * i + 2]);
      results[i].skipped = int64_t(total[4 * i + 3]);
      results[i].set_fractions();
    }
  }
  summary_.last_eval = results;
  for (const EvalResult& r : results) {
    char line[320];
    std::snprintf(line, sizeof line, "eval %s at %s images: top-1 %.2f%%, top-5 %.2f%% (%lld images%s, %.1fs)",
                  r.set.c_str(), format_count(state_.images_seen).c_str(), 100 * r.top1, 100 * r.top5,
                  (long long)r.images, r.skipped > 0 ? (", " + std::to_string(r.skipped) + " skipped").c_str() : "",
                  seconds_since(te));
    log(line);
    metric({{"event", "eval"}, {"step", state_.step}, {"images", state_.images_seen}, {"set", r.set},
            {"eval_images", r.images}, {"eval_skipped", r.skipped}, {"top1", r.top1}, {"top5", r.top5}});
  }
}

void Training::checkpoint() {
  state_.loss_scale = scaler_.enabled() ? scaler_.value() : 0;
  state_.loss_scale_good_steps = scaler_.good_steps();
  if (group_) {
    const LedgerTotals t = ledger_totals(ledger_, base_count_, group_, device_);
    if (t.duplicates != 0 || t.distinct != state_.images_seen)
      throw Error("stream: at image " + std::to_string(state_.images_seen) + " the trainer ranks recorded " +
                  std::to_string(t.distinct) + " distinct indices and " + std::to_string(t.duplicates) + " duplicates");
    state_.ledger = "low=" + std::to_string(state_.images_seen) + ";dup=0;sparse=";
  } else {
    state_.ledger = ledger_.serialize();
  }
  if (!job_.lead()) return;
  const fs::path file = save_checkpoint(ckpt_dir_, state_, *model_, *optimizer_, cfg_.train.keep_checkpoints);
  log("checkpoint " + file.filename().string());
  metric({{"event", "checkpoint"}, {"step", state_.step}, {"images", state_.images_seen}, {"file", file.string()}});
}

// The stream: this rank's shard of every global batch, fed by its own producers or by dedicated
// generator ranks, trained on step by step until the end or a stop request.
void Training::stream() {
  const size_t slot_bytes = size_t(cfg_.ring.max_height) * size_t(cfg_.ring.max_width) * 3;
  Ring ring(size_t(cfg_.ring.slots), slot_bytes);
  const StreamShard shard(state_.images_seen, total_, batch_, job_.trainer_rank(), job_.trainers());
  std::unique_ptr<Producer> producer;
  if (job_.generators() > 0) {
    const FeedPlan plan{job_.trainers(), job_.generators(), job_.trainer_rank(), cfg_.generator.batch_size};
    producer = std::make_unique<RemoteProducer>(*job_.world(), ring, shard, plan);
    log("fed by " + std::to_string(plan.feeders()) + " dedicated generator rank(s)");
  } else {
    producer = source_.make_producer(ring, IndexSequence::of(shard));
  }
  OrderedBatcher batcher(ring, shard);
  producer->start();
  if (job_.trainers() > 1)
    log(std::to_string(job_.trainers()) + " trainer ranks, " + std::to_string(batch_ / job_.trainers()) +
        " images each per step, gradients and batch norm synchronized over " + group_->backend());
  log("training " + cfg_.model.arch + " (width " + format_si(cfg_.model.width) + ", " +
      std::to_string(cfg_.model.num_classes) + " classes) on " + format_count(total_ - state_.images_seen) +
      " images of " + source_.name + ", " + std::to_string(total_steps_ - state_.step) + " steps of " +
      std::to_string(batch_) + ", peak lr " + format_si(schedule_.peak));

  TrainStep step(model_, *optimizer_, scaler_, reducer_.get(), device_, precision_, cfg_.optim.label_smoothing,
                 channels_last_);
  const torch::Dtype crop_dtype = gpu_crop_dtype(cfg_.train.precision);
  Progress progress(total_, state_.images_seen, cfg_.run.progress_seconds);
  const Clock::time_point t_train = Clock::now();
  model_->train();
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
    const uint64_t step_images = std::min<uint64_t>(uint64_t(batch_), total_ - state_.images_seen);  // job-wide
    std::vector<CropGroup> groups;
    {
      // The slots go back to the producers once their images are cropped (and sampled).
      const SlotBatch views(ring, *slots, ledger_);
      groups = augment_batch(cfg_, seed_, views.views, views.labels, device_, crop_dtype);
      if (job_.lead() && crossed(state_.images_seen, state_.images_seen + step_images, cfg_.run.sample_every_images))
        write_samples(fs::path(run_dir_) / "samples", state_.images_seen + step_images, views.views, views.labels,
                      groups[0], cfg_, source_);
    }
    // Each rank divides its summed loss by the job-wide crop count (see TrainStep).
    int64_t crops = 0;
    for (const CropGroup& g : groups) crops += g.images.size(0);
    const double global_crops = double(step_images) * double(crops / int64_t(slots->size()));
    const double lr = schedule_.at(state_.step);
    const TrainStepResult r = step(groups, global_crops, lr);
    if (!r.finite) metric({{"event", "skipped_step"}, {"step", state_.step}, {"loss_scale", r.loss_scale}});
    double loss_value = r.loss;
    const bool last_step = state_.images_seen + step_images >= total_;
    bool stop = !last_step && hooks_.stop_requested && hooks_.stop_requested();
    if (group_) {
      // One small all-reduce: the job-wide loss, and a stop any rank asked for (ranks must stop
      // at the same step or the others would wait in the next collective).
      const std::vector<double> t = sum_over(*group_, {loss_value, stop ? 1.0 : 0.0}, device_);
      loss_value = t[0];
      stop = t[1] > 0;
    }
    if (!std::isfinite(loss_value))
      throw Error("training diverged: loss is " + std::to_string(loss_value) + " at step " + std::to_string(state_.step) +
                  " (lower optim.lr?)");
    const uint64_t before = state_.images_seen;
    state_.step += 1;
    state_.images_seen += step_images;
    report(loss_value, lr, progress, ring, t_train);
    const bool last = state_.images_seen >= total_;
    if (!last && crossed(before, state_.images_seen, cfg_.eval.every_images)) evaluate();
    if (!last && crossed(before, state_.images_seen, cfg_.train.checkpoint_every_images)) checkpoint();
    if (!last && stop) {
      summary_.interrupted = true;
      break;
    }
  }
  if (summary_.interrupted) ring.close();  // producers stop; what they made but was not trained is not in the ledger
  producer->join();
  summary_.seconds = seconds_since(t_train);
  summary_.images_produced = producer->produced();
  if (group_) summary_.images_produced = uint64_t(sum_over(*group_, {double(summary_.images_produced)}, device_)[0]);
  if (!summary_.interrupted) {
    if (state_.images_seen < total_)
      throw Error("the stream ended at image " + std::to_string(state_.images_seen) + " of " + std::to_string(total_));
    const RingStats rs = ring.stats();
    summary_.trainer_stall = summary_.seconds > 0 ? std::min(1.0, rs.consumer_wait_s / summary_.seconds) : 0.0;
    log("ring: trainer waited " + format_duration(rs.consumer_wait_s) + " for images, producers waited " +
        format_duration(rs.producer_wait_s) + " for free slots" +
        (producer->skipped() ? ", " + std::to_string(producer->skipped()) + " corrupt items skipped" : ""));
  }
  checkpoint();
  if (summary_.interrupted) log("interrupted at " + format_count(state_.images_seen) + " images; --resume continues from here");
}

// metrics.jsonl every kMetricsEverySteps steps (the loss averaged over them) and the progress line.
void Training::report(double loss, double lr, Progress& progress, const Ring& ring, Clock::time_point t_train) {
  loss_sum_ += loss;
  loss_steps_ += 1;
  const double elapsed = seconds_since(t_train);
  // The share of the run the trainer sat waiting for images: the stream's bottleneck measure
  // (0 when generation keeps up, near 1 when the trainer starves).
  const RingStats rs = ring.stats();
  const double trainer_stall = elapsed > 0 ? std::min(1.0, rs.consumer_wait_s / elapsed) : 0.0;
  if (state_.step % kMetricsEverySteps == 0 || state_.images_seen >= total_) {
    metric({{"step", state_.step},
            {"images", state_.images_seen},
            {"loss", loss_sum_ / double(loss_steps_)},
            {"lr", lr},
            {"images_per_s", progress.rate(state_.images_seen, elapsed)},
            {"ring_occupancy", ring.ready_count()},
            {"ring_slots", ring.slots()},
            {"trainer_stall", trainer_stall},
            {"producer_wait_s", rs.producer_wait_s}});
    loss_sum_ = 0;
    loss_steps_ = 0;
  }
  if (progress.due(elapsed)) {
    char tail[160];
    std::snprintf(tail, sizeof tail, ", step %lld/%lld, loss %.4f, lr %.4g, ring %zu/%zu, trainer stalled %.0f%%",
                  (long long)state_.step, (long long)total_steps_, loss, lr, ring.ready_count(), ring.slots(),
                  100 * trainer_stall);
    log(progress.line(state_.images_seen, elapsed) + tail);
  }
}

void Training::finish(TrainSummary& summary) const {
  summary.steps = state_.step;
  summary.images_trained = state_.images_seen - start_images_;
  summary.images_seen = state_.images_seen;
  if (group_) {
    const LedgerTotals t = ledger_totals(ledger_, base_count_, group_, device_);
    summary.duplicates = t.duplicates;
    summary.gaps = t.distinct < state_.images_seen ? state_.images_seen - t.distinct : 0;
    summary.exactly_once = t.duplicates == 0 && t.distinct == state_.images_seen;
  } else {
    summary.duplicates = ledger_.duplicates();
    summary.gaps = ledger_.gap_count(state_.images_seen);
    summary.exactly_once = ledger_.exactly_once(state_.images_seen);
  }
  if (summary.seconds == 0) summary.seconds = seconds_since(t0_);
}

}  // namespace

TrainSummary run_training(const Config& cfg, const ImageSource& source, const std::string& run_dir, bool resume,
                          const TrainHooks& hooks, const Job& job) {
  check_trainable(cfg);
  if (cfg.train.threads > 0) torch::set_num_threads(cfg.train.threads);
  return Training(cfg, source, run_dir, hooks, job).run(resume);
}

}  // namespace synth
