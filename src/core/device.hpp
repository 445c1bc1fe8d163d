// Device values of the config keys train.device and generator.device and of the --device flags:
//   "cpu"
//   "cuda"    this rank's own GPU: cuda:LOCAL_RANK of the torchrun/Slurm environment (distributed/env.hpp),
//             so `torchrun --nproc-per-node=8` puts rank r of a node on GPU r without flags
//   "cuda:N"  GPU N on every rank (one process per node, or a GPU chosen by hand)
// Torch-free so the config stage checks values with the same parser the stages resolve them with;
// the torch::Device itself comes from resolve_device (distributed/env.hpp), the one place that maps a
// value and a rank to a device.
#pragma once
#include <string>

#include "core/error.hpp"

namespace synth {

// c10::DeviceIndex is int8_t: GPU ordinals above 127 cannot be named.
constexpr int kMaxDeviceIndex = 127;

struct DeviceSpec {
  bool cuda = false;
  int index = -1;  // "cuda:N": N; "cuda" and "cpu": -1 ("cuda": the rank's local GPU)
};

// True for the values that ask for a GPU ("cuda", "cuda:..."), valid or not; for rules that only
// need to know whether a key asks for CUDA once the value has been checked.
inline bool is_cuda_spec(const std::string& value) { return value == "cuda" || value.rfind("cuda:", 0) == 0; }

// Parses a device value; InputError naming `key` (a config key or a flag) for anything else
// ("gpu", "cuda:x", "cuda:-1", "cuda:01", "cuda:1 ", "CUDA").
inline DeviceSpec parse_device_spec(const std::string& value, const std::string& key) {
  if (value == "cpu") return {false, -1};
  if (value == "cuda") return {true, -1};
  const auto bad = [&](const std::string& why) {
    return InputError(key + " = \"" + value + "\" is not a device" + why +
                      " (cpu | cuda = this rank's GPU, LOCAL_RANK | cuda:N = GPU N)");
  };
  if (value.rfind("cuda:", 0) != 0) throw bad("");
  const std::string digits = value.substr(5);
  // Digits only, no sign and no leading zero, as torch's own "cuda:N" parser accepts.
  if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos ||
      (digits.size() > 1 && digits[0] == '0'))
    throw bad(": N must be a GPU index 0.." + std::to_string(kMaxDeviceIndex));
  const int index = std::stoi(digits);
  if (index > kMaxDeviceIndex) throw bad(": N must be a GPU index 0.." + std::to_string(kMaxDeviceIndex));
  return {true, index};
}

// The CUDA ordinal `value` names on a rank whose LOCAL_RANK is `local_rank`, or -1 for the CPU.
inline int resolve_device_index(const std::string& value, const std::string& key, int local_rank) {
  const DeviceSpec spec = parse_device_spec(value, key);
  if (!spec.cuda) return -1;
  if (spec.index >= 0) return spec.index;
  if (local_rank < 0 || local_rank > kMaxDeviceIndex)
    throw InputError(key + " = \"cuda\" means cuda:LOCAL_RANK, but LOCAL_RANK is " + std::to_string(local_rank) +
                     " (GPU indices are 0.." + std::to_string(kMaxDeviceIndex) + ")");
  return local_rank;
}

}  // namespace synth
