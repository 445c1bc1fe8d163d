// Loading, validating and writing the run configuration. One binding table in config.cpp maps every
// dotted TOML key to its field in Config with type, range/choices and a one-line doc; the loader is
// strict (unknown keys, wrong types and out-of-range values are errors with file:line:column) so a
// typo never silently falls back to a default. All errors are synth::InputError.
#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace synth {

// Reads `path`, applies each override "section.key=value" (value parsed as TOML; a value that is not
// valid TOML is taken as a bare string for string keys), checks types, ranges, cross-field rules and
// that the input paths exist. cfg.source_file is set to `path`.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Same as load_config for TOML text held in memory; `source_name` prefixes error locations.
Config parse_config(const std::string& toml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {});

// Cross-field rules and input-path existence (also run by load_config/parse_config). Throws
// InputError naming the keys involved.
void validate_config(const Config& cfg);

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
