// Loading, validating and writing the run configuration. One binding table in config.cpp maps every
// dotted TOML key to its field in Config with type, range/choices and a one-line doc; the loader is
// strict (unknown keys, wrong types and out-of-range values are errors with file:line:column) so a
// typo never silently falls back to a default. All errors are synth::InputError.
#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace synth {

// The input files a command reads, as a set of bits: load_config checks that the paths of these
// exist, and only these, so that a command runs without the files it never opens (stream-augment
// on the paper configs without SD weights or ImageNet). Syntax, types, ranges, unknown keys and the
// rules between keys are checked for the whole file whatever the set: a typo is a typo.
using ConfigInputs = unsigned;
constexpr ConfigInputs kNoInputs = 0;
// The training stream: data.train_path (data.source = "fmnist" | "image_folder") or
// generator.model_dir (data.source = "synthetic"), and data.class_file.
constexpr ConfigInputs kTrainData = 1u << 0;
// Evaluation: eval.path (unless eval.source = "none"), the folders and index_ids files of
// eval.sets, and data.class_file (labels of wnid/index sets).
constexpr ConfigInputs kEvalSets = 1u << 1;
// Everything a training run reads (stream-train).
constexpr ConfigInputs kAllInputs = kTrainData | kEvalSets;
// The prompt stream's files (prompts.class_file, scene_file, class_weights_file) have no bit: the
// prompt stream reads them at start-up and names the file it cannot open, and which ones it needs
// depends on the templates, which the prompts stage knows.

// Reads `path`, applies each override "section.key=value" (value parsed as TOML; a value that is not
// valid TOML is taken as a bare string for string keys), checks types, ranges, cross-field rules and
// that the input paths of `inputs` exist. cfg.source_file is set to `path`.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                   ConfigInputs inputs = kAllInputs);

// Same as load_config for TOML text held in memory; `source_name` prefixes error locations.
Config parse_config(const std::string& toml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {}, ConfigInputs inputs = kAllInputs);

// Cross-field rules and existence of the input paths of `inputs` (also run by
// load_config/parse_config). Throws InputError naming the keys involved.
void validate_config(const Config& cfg, ConfigInputs inputs = kAllInputs);

// The effective configuration as TOML, every key with its doc comment; parse_config(to_toml(c))
// reproduces every setting of c exactly (doubles are written in shortest round-trip form).
std::string to_toml(const Config& cfg);

// One entry of the binding table, for documentation and tests.
struct ConfigKey {
  std::string key;        // dotted path, e.g. "train.batch_size"
  std::string type;       // "integer" | "float" | "boolean" | "string" | "array of floats"
  std::string allowed;    // human-readable range or choices, e.g. ">= 1", "cpu | cuda"
  std::string doc;        // one line
  std::string default_toml;  // the default value as TOML
};
const std::vector<ConfigKey>& config_keys();

// Keys whose values differ between a and b (source_file is not a setting and is ignored).
std::vector<std::string> diff_settings(const Config& a, const Config& b);
inline bool same_settings(const Config& a, const Config& b) { return diff_settings(a, b).empty(); }

// The bound key closest to `key` by edit distance, or "" when nothing is reasonably close.
std::string closest_key(const std::string& key);

}  // namespace synth
