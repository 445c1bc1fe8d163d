// The training loop: pops ordered batches from the ring, augments, steps, evaluates, checkpoints.
// The app wires the run directory (log, metrics) and the evaluator in through TrainHooks; the
// trainer knows evaluation only by its interface (eval/eval_result.hpp: a Classifier in, EvalResults out).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "config/config.hpp"
#include "distributed/job.hpp"
#include "eval/eval_result.hpp"
#include "stream/producer.hpp"

namespace synth {

struct TrainHooks {
  std::function<void(const std::string&)> log;        // one human-readable line (console + log.txt)
  std::function<void(const nlohmann::json&)> metrics; // one object -> one line of metrics.jsonl
  // Periodic evaluation on real held-out images (empty: no evaluation), called in eval mode with
  // rank 0's weights and batch-norm statistics. In a job of several trainer ranks every rank must
  // have one (or none) and score only its share of each set (eval/evaluator.hpp, EvalShard): the
  // trainer sums images, hits and skips over the ranks.
  std::function<std::vector<EvalResult>(const Classifier&)> evaluate;
  // Polled after every step (empty: never). True: write a checkpoint at the current position and
  // return early with TrainSummary::interrupted set (Ctrl-C / SIGTERM in stream-train).
  std::function<bool()> stop_requested;
};

struct TrainSummary {
  int64_t steps = 0;
  uint64_t images_trained = 0;  // in this invocation (a resumed run counts from its checkpoint)
  uint64_t images_produced = 0; // published into the ring by the producers in this invocation
  uint64_t duplicates = 0, gaps = 0;
  uint64_t images_seen = 0;   // the run's position: images trained on since image 0, across resumes
  bool exactly_once = false;  // the ledger holds every index of [0, images_seen) exactly once
  bool interrupted = false;   // stopped by hooks.stop_requested; --resume continues
  std::vector<EvalResult> last_eval;  // the last evaluation, one result per set in set order (empty: none)
  double seconds = 0;
  double trainer_stall = 0;   // share of `seconds` the trainer waited for images (this rank)
};

// Throws InputError naming the key when cfg asks for something this trainer cannot do (yet), so
// the main can refuse before it creates a run directory.
void check_trainable(const Config& cfg);

// Trains per cfg on the images of `source` (real_image_source() or synthetic_image_source(), built
// by the caller so bad data fails before a run directory exists) in run_dir (checkpoints go to
// run_dir/checkpoints). With resume, continues from the newest checkpoint there (none: from image
// 0); otherwise starts fresh. Throws InputError for unusable input, synth::Error for failures
// during the run; the newest checkpoint stays intact.
//
// In a job of several trainer ranks (`job`, one process each, all calling this) each rank trains
// on its StreamShard of every global batch; gradients are summed and batch-norm statistics
// synchronized over job.trainer_group(), so the weights follow the one-rank run up to float
// rounding. Only the lead rank writes checkpoints and samples (hooks are the caller's business:
// give log/metrics to the lead only, evaluate to every rank or none; a mismatch is an Error before
// the first step). A resumed run may use a different number of ranks.
// Summaries hold job-wide counts on every rank.
TrainSummary run_training(const Config& cfg, const ImageSource& source, const std::string& run_dir, bool resume,
                          const TrainHooks& hooks, const Job& job = Job());

}  // namespace synth
