// Where this process sits in a job, read from the environment that the launchers set, so
// `torchrun --nproc-per-node=8 stream-train CONFIG` and `srun stream-train CONFIG` both work
// without flags:
//   torchrun (and any launcher following its convention): RANK, WORLD_SIZE, LOCAL_RANK,
//     MASTER_ADDR, MASTER_PORT;
//   Slurm (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the master is MASTER_ADDR when set,
//     else the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST ("gpu[03-06,09]" -> gpu03),
//     and MASTER_PORT when set, else 29500 + SLURM_JOB_ID % 10000 (two jobs on one node differ).
// Neither: a single process (rank 0 of 1). torchrun's variables win over Slurm's, because
// torchrun inside an allocation sets its own.
#pragma once
#include <c10/core/Device.h>

#include <functional>
#include <string>

namespace synth {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // the GPU this process uses on its node
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // none | torchrun | slurm

  bool distributed() const { return world_size > 1; }
};

// Reads the variables through `getenv` (tests pass a map). Throws InputError naming the variable
// when one is malformed or inconsistent (RANK >= WORLD_SIZE, a port outside 1..65535).
DistEnv dist_env_from(const std::function<const char*(const char*)>& getenv);
DistEnv dist_env_from_process();

// The device a device value ("cpu" | "cuda" | "cuda:N", core/device.hpp) names on this rank:
// "cuda" -> cuda:LOCAL_RANK, "cuda:N" -> cuda:N on every rank, "cpu" -> cpu. The one mapping from
// config/flag values to devices (trainer, generator, stream-sample, stream-augment); pure, so it
// works and is tested without a GPU. InputError naming `key` for a malformed value.
c10::Device resolve_device(const std::string& value, const std::string& key, int local_rank);
inline c10::Device resolve_device(const std::string& value, const std::string& key, const DistEnv& env) {
  return resolve_device(value, key, env.local_rank);
}

// InputError naming `key` (which was `value`) when `device` is a GPU this build or machine does not
// have: no CUDA at all, or an index beyond the device count. Nothing for the CPU.
void require_device(const c10::Device& device, const std::string& key, const std::string& value);

// First host of a Slurm node list: "a01,b02" -> a01, "gpu[03-06,09],cpu1" -> gpu03.
std::string first_slurm_host(const std::string& nodelist);

}  // namespace synth
