// train.device and generator.device: cpu | cuda | cuda:N, checked at load with the value's
// file:line:column and the key; the fp16 rules accept any cuda value.
#include <doctest/doctest.h>

#include <string>

#include "config/load.hpp"
#include "core/error.hpp"
#include "support/input_error.hpp"

using namespace synth;

namespace {

const std::string kTail = " (cpu | cuda = this rank's GPU, LOCAL_RANK | cuda:N = GPU N)";

std::string parse_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return test::input_error([&] { parse_config(text, "mem.toml", overrides); });
}

}  // namespace

TEST_CASE("device keys take cpu, cuda and cuda:N") {
  for (const char* value : {"cpu", "cuda", "cuda:0", "cuda:1", "cuda:15", "cuda:127"}) {
    CAPTURE(value);
    const Config c = parse_config("", "mem.toml", {std::string("train.device=") + value, std::string("generator.device=") + value});
    CHECK(c.train.device == value);
    CHECK(c.generator.device == value);
  }
}

TEST_CASE("malformed device values name the key and where the value is") {
  CHECK(parse_error("[train]\ndevice = \"cuda:x\"\n") ==
        "mem.toml:2:10: train.device = \"cuda:x\" is not a device: N must be a GPU index 0..127" + kTail);
  CHECK(parse_error("[generator]\ndevice = \"cuda:-1\"\n") ==
        "mem.toml:2:10: generator.device = \"cuda:-1\" is not a device: N must be a GPU index 0..127" + kTail);
  CHECK(parse_error("[generator]\ndevice = \"gpu\"\n") == "mem.toml:2:10: generator.device = \"gpu\" is not a device" + kTail);
  CHECK(parse_error("", {"train.device=cuda:128"}) ==
        "--set train.device=cuda:128: train.device = \"cuda:128\" is not a device: N must be a GPU index 0..127" + kTail);
  CHECK(parse_error("", {"train.device=\"\""}) == "--set train.device=\"\": train.device must not be empty");
  // Checked for a Config built in code too.
  Config c;
  c.train.device = "cuda:1x";
  CHECK(test::input_error([&] { validate_config(c); }).find("train.device = \"cuda:1x\" is not a device") != std::string::npos);
}

TEST_CASE("fp16 rules accept every cuda value and still refuse the cpu") {
  CHECK(parse_config("[train]\nprecision = \"fp16\"\ndevice = \"cuda:3\"\n", "mem.toml").train.precision == "fp16");
  CHECK(parse_config("[train]\nprecision = \"fp16\"\ndevice = \"cuda\"\n", "mem.toml").train.device == "cuda");
  CHECK(parse_error("[train]\nprecision = \"fp16\"\ndevice = \"cpu\"\n") ==
        "mem.toml:2:13: train.precision = \"fp16\" needs train.device = \"cuda\" (use fp32 or bf16 on cpu)");
}

TEST_CASE("the device keys' documented choices") {
  int seen = 0;
  for (const ConfigKey& k : config_keys())
    if (k.key == "train.device" || k.key == "generator.device") {
      CAPTURE(k.key);
      CHECK(k.allowed == "cpu | cuda | cuda:N");
      CHECK(k.default_toml == "\"cpu\"");
      ++seen;
    }
  CHECK(seen == 2);
}
