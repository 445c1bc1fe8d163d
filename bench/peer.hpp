// What the benchmarks with --peer share: running a Python peer with the project venv's
// interpreter (SYNTH_PYTHON, cmake/synth.cmake; defined for each bench in its CMakeLists.txt),
// reading its "images/s <rate>" lines, and writing the figures as JSON (--json FILE).
// Header-only; benchmarks print figures and never assert timings.
#pragma once
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#ifndef SYNTH_PYTHON
#error "SYNTH_PYTHON (the project venv's python3) must be defined by the bench's CMakeLists.txt"
#endif

namespace synth_bench {

// The peers need torch >= 2, torchvision, diffusers: the venv's interpreter, never whatever python3
// is on PATH. Throws when it is not there (a venv removed or moved since the build).
inline std::string peer_python() {
  const std::string python = SYNTH_PYTHON;
  if (python.empty() || ::access(python.c_str(), X_OK) != 0)
    throw std::runtime_error("--peer needs the project venv's python, SYNTH_PYTHON = '" + python +
                             "', which is not an executable: run tools/install-deps.sh and rebuild");
  return python;
}

// Single-quoted for /bin/sh (popen), so paths with spaces or quotes pass as one word.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `python script args...`, echoes its stdout, and returns every value of its lines
// "images/s <rate>" in order. Throws when it exits non-zero, or prints no rate when need_rate (its
// stderr, which is not captured, carries the reason).
inline std::vector<double> run_peer(const std::string& python, const std::string& script,
                                    const std::vector<std::string>& args, bool need_rate = true) {
  std::string cmd = shell_quote(python) + " " + shell_quote(script);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  std::fflush(stdout);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot start the peer: " + cmd);
  std::vector<double> rates;
  char line[1024];
  while (std::fgets(line, sizeof line, p)) {
    std::fputs(line, stdout);
    std::fflush(stdout);
    double r = 0;
    if (std::sscanf(line, "images/s %lf", &r) == 1) rates.push_back(r);
  }
  const int status = ::pclose(p);
  if (status != 0 || (need_rate && rates.empty()))
    throw std::runtime_error("the Python peer (" + cmd + ") failed (exit status " +
                             std::to_string(status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                             "); its error is above");
  return rates;
}

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (const char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += c;
    }
  }
  return o;
}

// One measured row: what was measured (its settings as text), ours, theirs (0: no peer run) and
// their ratio, in `unit` (images/s).
struct Row {
  std::string what;
  double ours = 0, theirs = 0;
};

// {"bench": ..., "peer": ..., "unit": "images/s", "settings": {...}, "rows": [{"what", "ours",
// "theirs", "ratio"}]}; settings are strings. Throws when the file cannot be written.
inline void write_json(const std::string& path, const std::string& bench, const std::string& peer,
                       const std::vector<std::pair<std::string, std::string>>& settings, const std::vector<Row>& rows) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("--json: cannot write '" + path + "'");
  std::fprintf(f, "{\n  \"bench\": \"%s\",\n  \"peer\": \"%s\",\n  \"unit\": \"images/s\",\n  \"settings\": {",
               json_escape(bench).c_str(), json_escape(peer).c_str());
  for (size_t i = 0; i < settings.size(); ++i)
    std::fprintf(f, "%s\n    \"%s\": \"%s\"", i ? "," : "", json_escape(settings[i].first).c_str(),
                 json_escape(settings[i].second).c_str());
  std::fprintf(f, "\n  },\n  \"rows\": [");
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::fprintf(f, "%s\n    {\"what\": \"%s\", \"ours\": %.6g, ", i ? "," : "", json_escape(r.what).c_str(), r.ours);
    if (r.theirs > 0)
      std::fprintf(f, "\"theirs\": %.6g, \"ratio\": %.6g}", r.theirs, r.ours / r.theirs);
    else
      std::fprintf(f, "\"theirs\": null, \"ratio\": null}");
  }
  std::fprintf(f, "\n  ]\n}\n");
  if (std::fclose(f) != 0) throw std::runtime_error("--json: cannot write '" + path + "'");
}

}  // namespace synth_bench
