// stream-train CONFIG [--set section.key=value]... [--resume]: loads and validates the config,
// opens the run directory (config.toml, log.txt, metrics.jsonl, checkpoints/) and hands over to
// the training loop. Bad input exits 2 with one "stream-train: error: ..." line on stderr.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/cli.hpp"
#include "config/load.hpp"
#include "core/device.hpp"
#include "data/batch_stream.hpp"
#include "distributed/env.hpp"
#include "distributed/job.hpp"
#include "eval/evaluator.hpp"
#include "generate/generator.hpp"
#include "generate/remote.hpp"
#include "run/metrics.hpp"
#include "run/progress.hpp"
#include "run/report.hpp"
#include "run/run_dir.hpp"
#include "train/trainer.hpp"

namespace {

// Set by SIGINT/SIGTERM. A signal handler can only reach static storage; this flag is the one
// piece of process state, read by the trainer's stop_requested hook after every step.
std::atomic<bool> g_stop{false};

extern "C" void request_stop(int) { g_stop.store(true); }

// The first Ctrl-C / SIGTERM asks for a checkpoint and a clean exit (130); SA_RESETHAND makes a
// second one kill the process at once.
void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = request_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Whether rank 0 announced an open run directory (read by the other ranks too). Failures before
// that need no watchdog: a refused directory reaches every rank through the announcement.
std::atomic<bool> g_announced{false};

// The run's log.txt once rank 0 has opened it, for the watchdog's verdict.
std::atomic<const synth::RunDir*> g_run{nullptr};

// The watchdog's verdict (a lost rank, or a failure another rank published), or a collective that
// failed because of it: one line, log.txt on rank 0, exit 3. Called from the watchdog's thread or
// the main thread, whichever comes first; the other waits for the exit.
[[noreturn]] void stop_job(const std::string& why) {
  static std::atomic<bool> stopping{false};
  if (stopping.exchange(true))
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::string line = why + "; --resume continues the job from its last checkpoint";
  std::fprintf(stderr, "stream-train: error: %s\n", line.c_str());
  std::fflush(stderr);
  if (const synth::RunDir* run = g_run.load()) run->file_error(line);
  std::_Exit(3);
}

constexpr const char* kUsage =
    "usage: stream-train CONFIG [--set section.key=value]... [--resume]\n"
    "Trains the classifier described by CONFIG (see configs/reference.toml for every key) in\n"
    "<run.dir>/<run.name>/: config.toml (effective config), log.txt, metrics.jsonl, checkpoints/.\n"
    "  --set k=v   override one key; v is a TOML value (--set train.batch_size=64,\n"
    "              --set run.name='\"x\"'); repeatable, applied before validation\n"
    "  --resume    continue the run in an existing run directory from its newest checkpoint\n"
    "  --help      this text\n"
    "Ctrl-C or SIGTERM: checkpoint at the current image, exit 130 (--resume continues); a second one\n"
    "kills at once.\n"
    "Several processes: start one per GPU with torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,\n"
    "MASTER_PORT) or srun (SLURM_* variables); each trains on its share of every global batch, with\n"
    "gradients and batch norm synchronized ([dist] in configs/reference.toml). Rank 0 writes the run\n"
    "directory, which every rank must see (shared file system).\n"
    "Exit status: 0 done, 2 bad input (config, data, run directory), 1 internal error, 3 another rank\n"
    "of the job was lost or failed (dist.lost_rank_s), 130 interrupted.\n";

// Rank 0 tells the others whether the run directory is open, so a refused directory (exists
// without --resume) or an unusable evaluation set stops every rank at once instead of leaving
// them waiting in a collective.
void announce_run_dir(const synth::Job& job, bool ok) {
  if (job.rendezvous()) job.rendezvous()->set("run_dir", ok ? "open" : "refused");
  g_announced = ok;
}

// The other ranks' side of announce_run_dir: blocks until rank 0 has decided.
void await_run_dir(const synth::Job& job) {
  if (job.rendezvous()->get("run_dir") != "open")
    throw synth::InputError("rank 0 stopped before training (its run directory or evaluation sets; see its error)");
  g_announced = true;
}

// This trainer rank's evaluator, over its share (EvalShard) of every set; none when cfg has no set.
std::unique_ptr<synth::Evaluator> open_evaluator(const synth::Config& cfg, const synth::Job& job) {
  if (!synth::has_eval_sets(cfg)) return nullptr;
  return std::make_unique<synth::Evaluator>(cfg, synth::EvalShard{job.trainer_rank(), job.trainers()});
}

// A trainer rank other than 0: the same training, with no run directory writes of its own; its
// errors reach its stderr (the launcher's log) through guarded_main.
int follower(const synth::Config& cfg, const synth::ImageSource& source, bool resume, const synth::Job& job) {
  await_run_dir(job);
  synth::TrainHooks hooks;
  // Rank 0 has opened the same sets already, so their listings are usable; this rank decodes and
  // scores its own share of them.
  const std::unique_ptr<synth::Evaluator> evaluator = open_evaluator(cfg, job);
  if (evaluator)
    hooks.evaluate = [&evaluator](const synth::Classifier& classify) { return (*evaluator)(classify); };
  hooks.stop_requested = [] { return g_stop.load(); };
  install_stop_handlers();
  const std::string root = (std::filesystem::path(cfg.run.dir) / cfg.run.name).string();
  const synth::TrainSummary s = synth::run_training(cfg, source, root, resume, hooks, job);
  return s.interrupted ? 130 : 0;
}

// A dedicated generator rank: waits for the run's position (rank 0 publishes it once the run
// directory and any checkpoint are read), then makes and sends its part of one trainer's shard.
int generator(const synth::Config& cfg, const synth::ImageSource& source, const synth::Job& job) {
  await_run_dir(job);
  const std::string origin = job.rendezvous()->get("origin");
  const int j = job.rank() - job.trainers();
  const synth::FeedPlan plan{job.trainers(), job.generators(), j % job.trainers(), cfg.generator.batch_size};
  const synth::StreamShard shard(std::stoull(origin), uint64_t(cfg.train.total_images), cfg.train.batch_size, plan.trainer,
                                 job.trainers());
  synth::serve_trainer(cfg, source, *job.world(), shard, plan, j / job.trainers());
  return 0;
}

// Rank 0 (or the only process): opens the run directory, trains, writes the summary and report.
int lead(const synth::Config& cfg, const synth::ImageSource& source, bool resume, const synth::Job& job) {
  std::unique_ptr<synth::Evaluator> evaluator;
  std::optional<synth::RunDir> opened;
  try {
    // An unusable evaluation set, like a refused run directory, stops every rank now.
    evaluator = open_evaluator(cfg, job);
    opened = synth::open_run_dir(cfg, resume);
  } catch (...) {
    announce_run_dir(job, false);
    throw;
  }
  announce_run_dir(job, true);
  const synth::RunDir& run = *opened;
  g_run = new synth::RunDir(run);  // lives as long as the process: the watchdog may need it after lead() returned
  synth::MetricsWriter metrics(run.metrics_file);

  synth::TrainHooks hooks;
  hooks.log = [&run](const std::string& line) { run.info(line); };
  if (!cfg.run.note.empty()) run.info("note: " + cfg.run.note);
  hooks.metrics = [&metrics](const nlohmann::json& record) { metrics.write(record); };
  install_stop_handlers();
  hooks.stop_requested = [] { return g_stop.load(); };
  if (evaluator)
    hooks.evaluate = [&evaluator](const synth::Classifier& classify) { return (*evaluator)(classify); };

  synth::TrainSummary s;
  try {
    s = synth::run_training(cfg, source, run.root.string(), resume, hooks, job);
  } catch (const std::exception& e) {
    // stderr gets the line from guarded_main; log.txt keeps it with the run.
    run.file_error(e.what());
    throw;
  }

  const double rate = s.seconds > 0 ? double(s.images_trained) / s.seconds : 0;
  std::string line = std::string(s.interrupted ? "interrupted: " : "done: ") + std::to_string(s.images_produced) + " images " +
                     (cfg.data.source == "synthetic" ? "generated, " : "decoded, ") + std::to_string(s.images_trained) +
                     " trained in " +
                     std::to_string(s.steps) + " steps (" + synth::format_duration(s.seconds) + ", " +
                     synth::format_rate(rate) + "), " + std::to_string(s.duplicates) + " duplicates, " +
                     std::to_string(s.gaps) + " gaps";
  nlohmann::json evals = nlohmann::json::array();
  for (const synth::EvalResult& e : s.last_eval) {
    char acc[160];
    std::snprintf(acc, sizeof acc, "; %s top-1 %.2f%% top-5 %.2f%% on %lld images", e.set.c_str(), 100.0 * e.top1,
                  100.0 * e.top5, (long long)e.images);
    line += acc;
    evals.push_back({{"set", e.set}, {"images", e.images}, {"skipped", e.skipped}, {"top1", e.top1}, {"top5", e.top5}});
  }
  // The first set (eval.source's, or the first of eval.sets) is the run's headline figure.
  const synth::EvalResult first = s.last_eval.empty() ? synth::EvalResult{} : s.last_eval.front();
  run.info(line);
  metrics.write({{"event", "summary"},
                 {"images_produced", s.images_produced},
                 {"images_trained", s.images_trained},
                 {"steps", s.steps},
                 {"duplicates", s.duplicates},
                 {"gaps", s.gaps},
                 {"images_seen", s.images_seen},
                 {"exactly_once", s.exactly_once},
                 {"interrupted", s.interrupted},
                 {"seconds", s.seconds},
                 {"trainer_stall", s.trainer_stall},
                 {"eval_set", first.set},
                 {"eval_images", first.images},
                 {"top1", first.top1},
                 {"top5", first.top5},
                 {"eval", evals}});
  run.info("report: " + synth::write_report(run.root).string());
  return s.interrupted ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-train", [&] {
    const synth::cli::Args args(argc, argv, {"help", "resume"}, {"set"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.positional().size() != 1)
      throw synth::InputError(args.positional().empty() ? "missing CONFIG file (see --help)"
                                                        : "unexpected argument '" + args.positional()[1] + "'");
    const bool resume = args.has("resume");
    const synth::Config cfg = synth::load_config(args.positional()[0], args.all("set"));
    synth::check_trainable(cfg);
    const synth::DistEnv env = synth::dist_env_from_process();
    const bool dedicated = cfg.dist.trainer_ranks != 0 && cfg.dist.trainer_ranks < env.world_size;
    if (dedicated && cfg.data.source != "synthetic")
      throw synth::InputError(cfg.source_file + ": dist.trainer_ranks = " + std::to_string(cfg.dist.trainer_ranks) +
                              " makes generator ranks, which need data.source = \"synthetic\"");
    const bool generator_rank = dedicated && env.rank >= cfg.dist.trainer_ranks;
    // Open the data (and load the generator's weights) before the run directory, so unusable
    // input leaves nothing behind.
    // Trainers fed by generator ranks load no Stable Diffusion weights.
    const synth::TrainingSource training = synth::open_training_source(cfg, !dedicated || generator_rank);
    const synth::ImageSource& source = training.source;
    const auto timeout = std::chrono::milliseconds(int64_t(cfg.dist.timeout_s * 1000));
    const std::unique_ptr<synth::Job> job = synth::Job::join(
        env, synth::collective_backend(cfg.dist.backend, synth::is_cuda_spec(cfg.train.device)), cfg.dist.trainer_ranks, timeout);
    job->watch(std::chrono::milliseconds(int64_t(cfg.dist.lost_rank_s * 1000)), stop_job);
    int code;
    try {
      code = !job->trainer() ? generator(cfg, source, *job) : !job->lead() ? follower(cfg, source, resume, *job)
                                                               : lead(cfg, source, resume, *job);
    } catch (const synth::CommError&) {
      // Usually a peer is gone: wait for the watchdog to name it (it exits the process then).
      if (const std::optional<std::string> why = job->await_verdict()) stop_job(*why);
      throw;
    } catch (const std::exception& e) {
      std::string what = e.what();
      what.resize(std::min(what.find('\n'), what.size()));
      if (g_announced) job->publish_failure("rank " + std::to_string(job->rank()) + " failed: " + what);
      throw;
    }
    job->finish();
    return code;
  });
}