// This process's place in a training job, its rendezvous store (small coordination values), the
// group of trainer ranks (those that hold a model: gradient sums and SyncBN) and, with dedicated
// generator ranks, the world group the images travel in. One process alone is a job of one rank
// with no group, so the trainer runs the same code either way.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "distributed/comm.hpp"
#include "distributed/env.hpp"
#include "distributed/watchdog.hpp"

namespace synth {
struct DistConfig;

class Job {
 public:
  // A job of one process (no groups).
  Job() = default;
  // Joins the job of `env` (rendezvous at env.master_addr:port). backend: gloo | nccl. Ranks
  // [0, trainer_ranks) train (trainer_ranks = 0: all); InputError when the split is impossible.
  static std::unique_ptr<Job> join(const DistEnv& env, const std::string& backend, int trainer_ranks,
                                   std::chrono::milliseconds timeout);

  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }
  bool lead() const { return env_.rank == 0; }  // writes the run directory and checkpoints
  bool trainer() const { return env_.rank < trainers_; }
  int trainers() const { return trainers_; }
  int trainer_rank() const { return trainer() ? env_.rank : -1; }
  int generators() const { return env_.world_size - trainers_; }  // dedicated generator ranks

  Comm* trainer_group() const { return trainers_group_.get(); }  // nullptr unless >= 2 trainers
  Comm* world() const { return world_.get(); }  // Gloo, every rank; only with generator ranks
  const Rendezvous* rendezvous() const { return rendezvous_ ? &*rendezvous_ : nullptr; }

  // Lost ranks (watchdog.hpp): from here on every rank beats; a rank silent for lost_after, or a
  // failure another rank published, reaches on_verdict once. Nothing for a job of one process.
  void watch(std::chrono::milliseconds lost_after, Watchdog::OnVerdict on_verdict);
  // This rank failed with `why`: the others stop with it. Nothing for a job of one process.
  void publish_failure(const std::string& why) const;
  // After a CommError: the verdict naming the lost or failed rank, when one comes in time.
  std::optional<std::string> await_verdict() const;
  // This rank's part ended normally (also after SIGTERM): no more beats expected from it.
  void finish();

 private:
  DistEnv env_;
  int trainers_ = 1;
  std::optional<Rendezvous> rendezvous_;
  std::unique_ptr<Comm> trainers_group_, world_;
  std::unique_ptr<Watchdog> watchdog_;
};

// The backend a config asks for: dist.backend, with "auto" = nccl when training on cuda, else gloo.
std::string collective_backend(const std::string& configured, bool cuda_training);

}  // namespace synth
