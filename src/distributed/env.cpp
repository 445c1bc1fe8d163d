#include "distributed/env.hpp"

#include <cerrno>
#include <cstdlib>
#include <string>

#include <torch/cuda.h>

#include "core/device.hpp"
#include "core/error.hpp"

namespace synth {
namespace {

int parse_int(const char* name, const char* value, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < lo || v > hi)
    throw InputError(std::string("environment variable ") + name + " = '" + value + "' is not an integer in [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return int(v);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  const size_t comma = nodelist.find(',');
  const size_t bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) return nodelist.substr(0, comma);
  // prefix[lo-hi,...]: the first number of the range keeps its zero padding.
  const size_t stop = nodelist.find_first_of("-,]", bracket + 1);
  if (stop == std::string::npos) throw InputError("cannot parse Slurm node list '" + nodelist + "'");
  return nodelist.substr(0, bracket) + nodelist.substr(bracket + 1, stop - bracket - 1);
}

DistEnv dist_env_from(const std::function<const char*(const char*)>& getenv) {
  DistEnv env;
  auto get = [&](const char* name) -> const char* {
    const char* v = getenv(name);
    return v && *v ? v : nullptr;
  };
  if (get("WORLD_SIZE") || get("RANK")) {
    if (!get("WORLD_SIZE") || !get("RANK"))
      throw InputError(std::string("environment: RANK and WORLD_SIZE must be set together (found only ") +
                       (get("RANK") ? "RANK" : "WORLD_SIZE") + ")");
    env.launcher = "torchrun";
    env.world_size = parse_int("WORLD_SIZE", get("WORLD_SIZE"), 1, 1 << 20);
    env.rank = parse_int("RANK", get("RANK"), 0, env.world_size - 1);
    env.local_rank = get("LOCAL_RANK") ? parse_int("LOCAL_RANK", get("LOCAL_RANK"), 0, 1 << 20) : 0;
  } else if (get("SLURM_NTASKS") && get("SLURM_PROCID")) {
    env.launcher = "slurm";
    env.world_size = parse_int("SLURM_NTASKS", get("SLURM_NTASKS"), 1, 1 << 20);
    env.rank = parse_int("SLURM_PROCID", get("SLURM_PROCID"), 0, env.world_size - 1);
    env.local_rank = get("SLURM_LOCALID") ? parse_int("SLURM_LOCALID", get("SLURM_LOCALID"), 0, 1 << 20) : 0;
    const char* nodes = get("SLURM_STEP_NODELIST") ? get("SLURM_STEP_NODELIST") : get("SLURM_JOB_NODELIST");
    if (nodes) env.master_addr = first_slurm_host(nodes);
    if (get("SLURM_JOB_ID")) env.master_port = 29500 + parse_int("SLURM_JOB_ID", get("SLURM_JOB_ID"), 0, 1 << 30) % 10000;
  } else {
    return env;
  }
  if (get("MASTER_ADDR")) env.master_addr = get("MASTER_ADDR");
  if (get("MASTER_PORT")) env.master_port = parse_int("MASTER_PORT", get("MASTER_PORT"), 1, 65535);
  return env;
}

c10::Device resolve_device(const std::string& value, const std::string& key, int local_rank) {
  const int index = resolve_device_index(value, key, local_rank);
  return index < 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, c10::DeviceIndex(index));
}

void require_device(const c10::Device& device, const std::string& key, const std::string& value) {
  if (!device.is_cuda()) return;
  const std::string what = key + " = \"" + value + "\" (" + device.str() + " on this rank)";
  if (!torch::cuda::is_available()) throw InputError(what + " but this build/machine has no CUDA device; use cpu");
  const int count = int(torch::cuda::device_count());
  if (device.index() >= count)
    throw InputError(what + " but this machine has " + std::to_string(count) + " CUDA device(s), cuda:0..cuda:" +
                     std::to_string(count - 1));
}

DistEnv dist_env_from_process() {
  return dist_env_from([](const char* name) { return std::getenv(name); });
}

}  // namespace synth
