// Device resolution (core/device.hpp, distributed/env.hpp): which GPU a rank uses comes from its
// launcher environment and the config value alone, so it is checked here without any GPU.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include <torch/cuda.h>

#include "core/device.hpp"
#include "core/error.hpp"
#include "distributed/env.hpp"
#include "support/input_error.hpp"

namespace {

using Vars = std::map<std::string, std::string>;
using synth::test::input_error;

synth::DistEnv env_of(const Vars& v) {
  return synth::dist_env_from([&v](const char* name) -> const char* {
    auto it = v.find(name);
    return it == v.end() ? nullptr : it->second.c_str();
  });
}

const c10::Device kCpu(c10::kCPU);
c10::Device cuda(int i) { return c10::Device(c10::kCUDA, c10::DeviceIndex(i)); }

}  // namespace

TEST_CASE("\"cuda\" is cuda:LOCAL_RANK of the rank's torchrun or Slurm environment") {
  const synth::DistEnv torchrun = env_of({{"RANK", "7"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "3"}});
  CHECK(synth::resolve_device("cuda", "train.device", torchrun) == cuda(3));
  const synth::DistEnv slurm = env_of({{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "5"}});
  CHECK(synth::resolve_device("cuda", "generator.device", slurm) == cuda(5));
  // torchrun inside a Slurm allocation: torchrun's LOCAL_RANK wins, as for the rank itself.
  const synth::DistEnv both = env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}, {"SLURM_PROCID", "0"},
                                      {"SLURM_NTASKS", "1"}, {"SLURM_LOCALID", "0"}});
  CHECK(synth::resolve_device("cuda", "train.device", both) == cuda(1));
  // One process without a launcher: GPU 0.
  CHECK(synth::resolve_device("cuda", "train.device", env_of({})) == cuda(0));
  // Ranks 0..3 of a node each get their own GPU.
  for (int r = 0; r < 4; ++r) {
    CAPTURE(r);
    const synth::DistEnv e = env_of({{"RANK", std::to_string(4 + r)}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", std::to_string(r)}});
    CHECK(synth::resolve_device("cuda", "train.device", e) == cuda(r));
  }
}

TEST_CASE("\"cuda:N\" is GPU N on every rank; \"cpu\" is the CPU on every rank") {
  for (const char* local : {"0", "1", "3", "7"}) {
    CAPTURE(local);
    const synth::DistEnv e = env_of({{"RANK", local}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", local}});
    CHECK(synth::resolve_device("cuda:1", "train.device", e) == cuda(1));
    CHECK(synth::resolve_device("cuda:0", "generator.device", e) == cuda(0));
    CHECK(synth::resolve_device("cuda:127", "generator.device", e) == cuda(127));
    CHECK(synth::resolve_device("cpu", "train.device", e) == kCpu);
  }
  CHECK(synth::resolve_device("cuda:12", "train.device", 3) == cuda(12));
  CHECK(synth::resolve_device("cuda", "train.device", 2) == cuda(2));
}

TEST_CASE("malformed device values are InputErrors naming the key") {
  const std::string tail = " (cpu | cuda = this rank's GPU, LOCAL_RANK | cuda:N = GPU N)";
  auto error = [](const std::string& value, const std::string& key) {
    return input_error([&] { synth::resolve_device(value, key, 0); });
  };
  CHECK(error("gpu", "train.device") == "train.device = \"gpu\" is not a device" + tail);
  CHECK(error("CUDA", "generator.device") == "generator.device = \"CUDA\" is not a device" + tail);
  CHECK(error("", "train.device") == "train.device = \"\" is not a device" + tail);
  CHECK(error("cuda:", "--device") == "--device = \"cuda:\" is not a device: N must be a GPU index 0..127" + tail);
  for (const char* bad : {"cuda:x", "cuda:-1", "cuda:+1", "cuda:1 ", "cuda: 1", "cuda:01", "cuda:1.0", "cuda:128", "cuda:9999"}) {
    CAPTURE(bad);
    CHECK(error(bad, "generator.device") ==
          "generator.device = \"" + std::string(bad) + "\" is not a device: N must be a GPU index 0..127" + tail);
  }
  CHECK(error("cuda1", "train.device") == "train.device = \"cuda1\" is not a device" + tail);
  // LOCAL_RANK beyond what c10 can index.
  CHECK(input_error([] { synth::resolve_device("cuda", "train.device", 200); }) ==
        "train.device = \"cuda\" means cuda:LOCAL_RANK, but LOCAL_RANK is 200 (GPU indices are 0..127)");
  // Only "cuda" depends on LOCAL_RANK.
  CHECK(synth::resolve_device("cuda:3", "train.device", 200) == cuda(3));
  CHECK(synth::resolve_device("cpu", "train.device", 200) == kCpu);
}

TEST_CASE("is_cuda_spec and parse_device_spec agree on what asks for a GPU") {
  CHECK(synth::is_cuda_spec("cuda"));
  CHECK(synth::is_cuda_spec("cuda:3"));
  CHECK_FALSE(synth::is_cuda_spec("cpu"));
  CHECK_FALSE(synth::is_cuda_spec("gpu"));
  CHECK(synth::parse_device_spec("cuda", "k").cuda);
  CHECK(synth::parse_device_spec("cuda", "k").index == -1);
  CHECK(synth::parse_device_spec("cuda:4", "k").index == 4);
  CHECK_FALSE(synth::parse_device_spec("cpu", "k").cuda);
}

TEST_CASE("require_device: the CPU always; a GPU only when this machine has it, else an InputError naming the key") {
  CHECK_NOTHROW(synth::require_device(kCpu, "train.device", "cpu"));
  const int count = torch::cuda::is_available() ? int(torch::cuda::device_count()) : 0;
  const std::string beyond = input_error([&] { synth::require_device(cuda(count), "train.device", "cuda"); });
  if (count == 0) {
    CHECK(beyond == "train.device = \"cuda\" (cuda:0 on this rank) but this build/machine has no CUDA device; use cpu");
  } else {
    CHECK(beyond == "train.device = \"cuda\" (cuda:" + std::to_string(count) + " on this rank) but this machine has " +
                        std::to_string(count) + " CUDA device(s), cuda:0..cuda:" + std::to_string(count - 1));
    CHECK_NOTHROW(synth::require_device(cuda(count - 1), "train.device", "cuda"));
  }
}
