#include "config/eval_sets.hpp"

#include <algorithm>
#include <cctype>
#include <exception>
#include <filesystem>
#include <set>
#include <string>

#include "core/error.hpp"

namespace synth {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Names become table rows, JSON values and metric fields: keep them to a plain word.
bool plain_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::isalnum(c) || c == '-' || c == '_' || c == '.';
         });
}

void check_choice(const std::string& entry, const std::string& key, const std::string& value,
                  const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : " | ") + c;
  throw InputError("\"" + entry + "\": " + key + " = '" + value + "' is not one of " + list);
}

}  // namespace

EvalSetConfig parse_eval_set(const std::string& entry) {
  const std::vector<std::string> parts = split(entry, ',');
  const std::string head = trim(parts[0]);
  const auto eq = head.find('=');
  if (eq == std::string::npos)
    throw InputError("\"" + entry + "\": expected NAME=PATH[,option=value]...");
  EvalSetConfig s;
  s.name = trim(head.substr(0, eq));
  s.path = trim(head.substr(eq + 1));
  if (!plain_name(s.name))
    throw InputError("\"" + entry + "\": name '" + s.name + "' must be non-empty letters, digits, '-', '_' or '.'");
  if (s.path.empty()) throw InputError("\"" + entry + "\": empty path");
  std::set<std::string> seen;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string option = trim(parts[i]);
    const auto oeq = option.find('=');
    const std::string key = trim(option.substr(0, oeq));
    const std::string value = oeq == std::string::npos ? std::string() : trim(option.substr(oeq + 1));
    if (oeq == std::string::npos || key.empty() || value.empty())
      throw InputError("\"" + entry + "\": option '" + option + "' is not key=value");
    if (!seen.insert(key).second) throw InputError("\"" + entry + "\": option " + key + " given twice");
    if (key == "layout") {
      check_choice(entry, key, value, {"wnid", "index", "sorted", "idx"});
      s.layout = value;
    } else if (key == "index_ids") {
      s.index_ids = value;
    } else if (key == "classes") {
      check_choice(entry, key, value, {"complete", "partial", "present"});
      s.classes = value;
    } else if (key == "unknown") {
      check_choice(entry, key, value, {"error", "skip"});
      s.unknown = value;
    } else if (key == "limit") {
      size_t used = 0;
      long long n = -1;
      try {
        n = std::stoll(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || n < 0)
        throw InputError("\"" + entry + "\": limit = '" + value + "' is not an integer >= 0");
      s.limit = n;
    } else {
      throw InputError("\"" + entry + "\": unknown option '" + key +
                       "' (options: layout, index_ids, classes, unknown, limit)");
    }
  }
  if (!s.index_ids.empty() && s.layout != "index")
    throw InputError("\"" + entry + "\": index_ids needs layout=index");
  return s;
}

std::string eval_class_file(const Config& cfg) {
  if (!cfg.data.class_file.empty()) return cfg.data.class_file;
  return cfg.data.source == "synthetic" ? cfg.prompts.class_file : std::string();
}

std::vector<EvalSetConfig> eval_sets(const Config& cfg) {
  std::vector<EvalSetConfig> sets;
  if (cfg.eval.source != "none") {
    EvalSetConfig s;
    s.path = cfg.eval.path;
    if (cfg.eval.source == "fmnist") {
      s.name = "fmnist-t10k";
      s.layout = "idx";
    } else {
      const std::filesystem::path p(cfg.eval.path);
      s.name = (p.filename().empty() ? p.parent_path().filename() : p.filename()).string();
      s.layout = eval_class_file(cfg).empty() ? "sorted" : "wnid";
    }
    s.classes = "partial";
    s.limit = cfg.eval.limit;
    sets.push_back(s);
  }
  for (const std::string& entry : cfg.eval.sets) {
    sets.push_back(parse_eval_set(entry));
    if (sets.back().limit == 0) sets.back().limit = cfg.eval.limit;
  }
  return sets;
}

void check_eval_sets(const Config& cfg, bool check_paths) {
  const std::vector<EvalSetConfig> sets = eval_sets(cfg);
  const bool has_class_file = !eval_class_file(cfg).empty();
  std::set<std::string> names;
  std::error_code ec;
  for (const EvalSetConfig& s : sets) {
    if (!names.insert(s.name).second)
      throw InputError("two evaluation sets are named '" + s.name + "' (names must be unique)");
  }
  // The eval.source set's path is eval.path, checked with that key.
  const size_t first = cfg.eval.source != "none" ? 1 : 0;
  for (size_t i = first; i < sets.size(); ++i) {
    const EvalSetConfig& s = sets[i];
    if (check_paths && !std::filesystem::is_directory(s.path, ec))
      throw InputError("set '" + s.name + "': '" + s.path + "' does not exist or is not a directory");
    if (check_paths && !s.index_ids.empty() && !std::filesystem::is_regular_file(s.index_ids, ec))
      throw InputError("set '" + s.name + "': index_ids '" + s.index_ids + "' does not exist or is not a file");
    if ((s.layout == "wnid" || s.layout == "index") && !has_class_file)
      throw InputError("set '" + s.name + "' (layout " + s.layout +
                       ") needs a class file mapping ids to logits: set data.class_file (data.source = \"" +
                       cfg.data.source + "\" has no prompts class file)");
  }
}

}  // namespace synth
