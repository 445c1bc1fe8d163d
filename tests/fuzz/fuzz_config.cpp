// Fuzzes the TOML config loader (src/config/config.cpp: parse_config = the TOML++ parse, the
// strict key binding, range checks, --set overrides, the cross-field rules of validate(), and
// src/config/eval_sets.cpp: parse_eval_set/check_eval_sets on eval.sets entries).
//
// Input layout: the bytes up to the first NUL are the TOML document (TOML text cannot hold a raw
// NUL); every further NUL-separated piece is one `--set key=value` override (at most 8). Inputs
// are checked without their files (ConfigInputs = kNoInputs): the path checks are stat() calls.
// A config that loads must survive the documented round trip: parse_config(to_toml(c)) gives the
// same settings (config/load.hpp).
#include "config/load.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> parts = fuzz::split(data, size, '\0');
  const std::string doc = parts[0];
  std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  if (overrides.size() > 8) overrides.resize(8);

  synth::Config cfg;
  if (!fuzz::expect_ok_or_error([&] { cfg = synth::parse_config(doc, "fuzz.toml", overrides, synth::kNoInputs); }))
    return 0;
  const std::string text = synth::to_toml(cfg);
  synth::Config again;
  try {
    again = synth::parse_config(text, "fuzz-roundtrip.toml", {}, synth::kNoInputs);
  } catch (const synth::Error& e) {
    std::fprintf(stderr, "to_toml output does not load back: %s\n--- to_toml:\n%s\n", e.what(), text.c_str());
    fuzz::check(false, "parse_config(to_toml(c)) loads");
  }
  const std::vector<std::string> differ = synth::diff_settings(cfg, again);
  if (!differ.empty()) {
    std::fprintf(stderr, "round trip changed %s\n", differ.front().c_str());
    fuzz::check(false, "parse_config(to_toml(c)) reproduces every setting");
  }
  return 0;
}
