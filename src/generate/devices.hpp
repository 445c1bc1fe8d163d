// Where this rank's models run: train.device and generator.device resolved with the rank's
// environment by resolve_device (distributed/env.hpp), so "cuda" is cuda:LOCAL_RANK on every rank of a
// torchrun/Slurm job and "cuda:N" is GPU N everywhere. Here, the first stage that sees both the
// config and the rank's environment, so the generator (this stage), the trainer and the mains take
// their devices from the same two functions. Pure: no GPU needed to call or test them;
// require_device checks that the device exists.
#pragma once
#include <torch/types.h>

#include "config/config.hpp"
#include "distributed/env.hpp"

namespace synth {

// local_rank: the rank's DistEnv::local_rank (Job::local_rank()).
inline torch::Device train_device(const Config& cfg, int local_rank) {
  return resolve_device(cfg.train.device, "train.device", local_rank);
}

inline torch::Device generator_device(const Config& cfg, int local_rank) {
  return resolve_device(cfg.generator.device, "generator.device", local_rank);
}

}  // namespace synth
