#include "distributed/job.hpp"

#include "core/error.hpp"

namespace synth {

std::unique_ptr<Job> Job::join(const DistEnv& env, const std::string& backend, int trainer_ranks,
                               std::chrono::milliseconds timeout) {
  auto job = std::make_unique<Job>();
  job->env_ = env;
  if (trainer_ranks > env.world_size)
    throw InputError("dist.trainer_ranks = " + std::to_string(trainer_ranks) + " but the job has only " +
                     std::to_string(env.world_size) + " ranks (WORLD_SIZE)");
  job->trainers_ = trainer_ranks == 0 ? env.world_size : trainer_ranks;
  if (job->generators() > 0 && job->generators() < job->trainers_)
    throw InputError("dist.trainer_ranks = " + std::to_string(trainer_ranks) + " leaves " + std::to_string(job->generators()) +
                     " generator ranks for " + std::to_string(job->trainers_) +
                     " trainers; every trainer needs at least one generator rank (generation is the slow side)");
  if (!env.distributed()) return job;
  job->rendezvous_ = Rendezvous::tcp(env, timeout);
  // Generated images travel between host buffers (Gloo point-to-point).
  if (job->generators() > 0) job->world_ = job->rendezvous_->group("world", env.rank, env.world_size, "gloo", timeout, env.master_addr);
  if (job->trainers_ > 1 && job->trainer())
    job->trainers_group_ = job->rendezvous_->group("trainers", env.rank, job->trainers_, backend, timeout, env.master_addr);
  return job;
}

void Job::watch(std::chrono::milliseconds lost_after, Watchdog::OnVerdict on_verdict) {
  if (env_.distributed()) watchdog_ = std::make_unique<Watchdog>(env_, lost_after, std::move(on_verdict));
}

void Job::publish_failure(const std::string& why) const {
  if (watchdog_) watchdog_->publish_failure(why);
}

std::optional<std::string> Job::await_verdict() const {
  return watchdog_ ? watchdog_->await_verdict() : std::nullopt;
}

void Job::finish() {
  if (watchdog_) watchdog_->finish();
}

std::string collective_backend(const std::string& configured, bool cuda_training) {
  if (configured != "auto") return configured;
  return cuda_training ? "nccl" : "gloo";
}

}  // namespace synth
