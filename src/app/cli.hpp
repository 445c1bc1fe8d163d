// What every thin main shares: a small argument parser and the guard that turns any exception
// into one "<program>: error: <message>" line on stderr and a non-zero exit (2 for bad input,
// 1 for anything else). Header-only so each main stays one translation unit.
#pragma once
#include <cstdio>
#include <exception>
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/host_memory.hpp"

namespace synth::cli {

// Parses "--flag", "--key value", "--key=value" and positionals. Repeatable keys keep every value.
class Args {
 public:
  Args(int argc, char** argv, std::vector<std::string> flags, std::vector<std::string> options)
      : flags_(std::move(flags)), options_(std::move(options)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0 || a == "--") {
        positional_.push_back(a);
        continue;
      }
      std::string key = a.substr(2), value;
      const auto eq = key.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      }
      if (is_flag(key)) {
        if (inline_value) throw InputError("option --" + key + " takes no value");
        values_[key].push_back("1");
      } else if (is_option(key)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw InputError("option --" + key + " needs a value");
          value = argv[++i];
        }
        values_[key].push_back(value);
      } else {
        throw InputError("unknown option --" + key);
      }
    }
  }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  long long get_int(const std::string& key, long long fallback) const {
    if (!has(key)) return fallback;
    const std::string v = get(key);
    try {
      size_t used = 0;
      const long long x = std::stoll(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      throw InputError("option --" + key + " expects an integer, got '" + v + "'");
    }
  }
  double get_double(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const std::string v = get(key);
    try {
      size_t used = 0;
      const double x = std::stod(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      throw InputError("option --" + key + " expects a number, got '" + v + "'");
    }
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  bool is_flag(const std::string& k) const { return std::find(flags_.begin(), flags_.end(), k) != flags_.end(); }
  bool is_option(const std::string& k) const { return std::find(options_.begin(), options_.end(), k) != options_.end(); }
  std::vector<std::string> flags_, options_, positional_;
  std::map<std::string, std::vector<std::string>> values_;
};

// Runs body(); any exception becomes one line on stderr. Exit codes: 0 ok, 1 internal, 2 bad input.
inline int guarded_main(const char* program, const std::function<int()>& body) {
  keep_freed_memory();
  try {
    return body();
  } catch (const InputError& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace synth::cli
