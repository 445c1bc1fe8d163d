// Run directory life cycle, metrics.jsonl validity and progress formatting.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include "config/load.hpp"
#include "core/error.hpp"
#include "run/metrics.hpp"
#include "run/progress.hpp"
#include "run/run_dir.hpp"
#include "support/scratch_dir.hpp"
#include "support/input_error.hpp"

using namespace synth;
namespace fs = std::filesystem;

namespace {

using Scratch = synth::test::ScratchDir;

Config config_in(const fs::path& dir, const std::string& name) {
  Config c;
  c.run.dir = dir.string();
  c.run.name = name;
  return c;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

using synth::test::input_error;

}  // namespace

TEST_CASE("a new run directory holds config.toml, log.txt, metrics.jsonl and checkpoints/") {
  Scratch s;
  Config cfg = config_in(s.path, "fresh");
  cfg.train.batch_size = 64;
  cfg.optim.lr = 0.123;
  const RunDir rd = open_run_dir(cfg, false, false);
  CHECK(rd.root == s.path / "fresh");
  CHECK(fs::is_directory(rd.checkpoints));
  CHECK(fs::is_regular_file(rd.metrics_file));
  CHECK(fs::file_size(rd.metrics_file) == 0);
  CHECK(!rd.resumed);
  // The stored config is the effective one, loadable and equal in every setting.
  const Config stored = load_config(rd.config_file.string(), {});
  CHECK(diff_settings(stored, cfg).empty());
  // No temporary file is left behind by the atomic write.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(rd.root)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 4);

  rd.logger->info("hello {}", 42);
  rd.file_logger->error("failed: {}", "reason");
  const std::string log = slurp(rd.log_file);
  CHECK(log.find("new run in " + rd.root.string()) != std::string::npos);
  CHECK(log.find("[info] hello 42") != std::string::npos);
  CHECK(log.find("[error] failed: reason") != std::string::npos);
  CHECK(log.find("hello 42") < log.find("failed: reason"));
  // Not registered globally: two runs in one process never clash.
  CHECK(spdlog::get(rd.logger->name()) == nullptr);
}

TEST_CASE("an existing empty directory is used; a non-empty one needs --resume") {
  Scratch s;
  fs::create_directories(s.path / "empty");
  CHECK_NOTHROW(open_run_dir(config_in(s.path, "empty"), false, false));

  open_run_dir(config_in(s.path, "x"), false, false);
  const std::string root = (s.path / "x").string();
  CHECK(input_error([&] { open_run_dir(config_in(s.path, "x"), false, false); }) ==
        root + " exists and is not empty; pass --resume or choose another run.name");

  CHECK(input_error([&] { open_run_dir(config_in(s.path, "missing"), true, false); }) ==
        (s.path / "missing").string() + " does not exist; nothing to resume (drop --resume to start a new run)");
  fs::create_directories(s.path / "hollow");
  CHECK(input_error([&] { open_run_dir(config_in(s.path, "hollow"), true, false); }) ==
        (s.path / "hollow").string() + " is empty; nothing to resume (drop --resume to start a new run)");

  std::ofstream(s.path / "file") << "x";
  CHECK(input_error([&] { open_run_dir(config_in(s.path, "file"), false, false); }) ==
        (s.path / "file").string() + " exists and is not a directory; choose another run.name");
}

TEST_CASE("resume appends to log and metrics and reports changed settings") {
  Scratch s;
  Config cfg = config_in(s.path, "r");
  {
    RunDir rd = open_run_dir(cfg, false, false);
    rd.logger->info("first session");
    MetricsWriter m(rd.metrics_file);
    m.write({{"step", 1}});
  }
  cfg.train.total_images = 5000000;
  cfg.optim.lr = 0.2;
  RunDir rd = open_run_dir(cfg, true, false);
  CHECK(rd.resumed);
  MetricsWriter m(rd.metrics_file);
  m.write({{"step", 2}});
  const std::string log = slurp(rd.log_file);
  CHECK(log.find("first session") != std::string::npos);
  CHECK(log.find("resuming run in") != std::string::npos);
  CHECK(log.find("settings changed since the stored config.toml: optim.lr, train.total_images") != std::string::npos);
  const auto lines = lines_of(rd.metrics_file);
  REQUIRE(lines.size() == 2);
  CHECK(nlohmann::json::parse(lines[0])["step"] == 1);
  CHECK(nlohmann::json::parse(lines[1])["step"] == 2);
  CHECK(load_config(rd.config_file.string(), {}).train.total_images == 5000000);
}

TEST_CASE("every metrics line is one valid JSON object, also with awkward values and threads") {
  Scratch s;
  const fs::path path = s.path / "metrics.jsonl";
  {
    MetricsWriter m(path);
    m.write({{"text", "new\nline \"quoted\" tab\t"}, {"bad_utf8", std::string("\xff\xfe ok")}});
    m.write({{"nan", std::numeric_limits<double>::quiet_NaN()}, {"inf", std::numeric_limits<double>::infinity()}});
    m.write({{"nested", {{"top1", 0.5}, {"top5", 0.9}}}, {"list", {1, 2, 3}}});
    CHECK_THROWS_AS(m.write(nlohmann::json::array({1, 2})), Error);
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t)
      writers.emplace_back([&m, t] {
        for (int i = 0; i < 50; ++i) m.write({{"thread", t}, {"i", i}, {"pad", std::string(200, 'a' + t)}});
      });
    for (auto& w : writers) w.join();
    // Flushed per line: visible before the writer closes.
    CHECK(lines_of(path).size() == 203);
  }
  const auto lines = lines_of(path);
  REQUIRE(lines.size() == 203);
  int per_thread[4] = {0, 0, 0, 0};
  for (const auto& line : lines) {
    nlohmann::json j;
    CHECK_NOTHROW(j = nlohmann::json::parse(line));
    CHECK(j.is_object());
    if (j.contains("thread")) ++per_thread[j["thread"].get<int>()];
  }
  for (int t = 0; t < 4; ++t) CHECK(per_thread[t] == 50);
  const auto first = nlohmann::json::parse(lines[0]);
  CHECK(first["text"] == "new\nline \"quoted\" tab\t");
  CHECK(first["bad_utf8"] == "\xef\xbf\xbd\xef\xbf\xbd ok");
  CHECK(nlohmann::json::parse(lines[1])["nan"].is_null());
  CHECK(nlohmann::json::parse(lines[2])["nested"]["top5"] == 0.9);
  CHECK(input_error([&] { MetricsWriter bad(s.path / "no" / "such" / "m.jsonl"); }).rfind(
            "cannot open metrics file '" + (s.path / "no" / "such" / "m.jsonl").string() + "'", 0) == 0);
}

TEST_CASE("progress formatting") {
  CHECK(format_si(0) == "0.00");
  CHECK(format_si(5.234) == "5.23");
  CHECK(format_si(52.34) == "52.3");
  CHECK(format_si(523.4) == "523");
  CHECK(format_si(999.4) == "999");
  CHECK(format_si(999.6) == "1.00k");  // would round to "1000"
  CHECK(format_si(12345) == "12.3k");
  CHECK(format_si(1.2e6) == "1.20M");
  CHECK(format_si(12668900) == "12.7M");
  CHECK(format_si(3.5e12) == "3.50T");
  CHECK(format_count(950) == "950");
  CHECK(format_count(1000) == "1.00k");
  CHECK(format_rate(12345.0) == "12.3k img/s");
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(45.4) == "45s");
  CHECK(format_duration(59.6) == "1m00s");
  CHECK(format_duration(725) == "12m05s");
  CHECK(format_duration(3725) == "1h02m");
  CHECK(format_duration(99 * 3600 + 59 * 60) == "99h59m");
  CHECK(format_duration(4 * 86400 + 3 * 3600 + 100) == "99h01m");
  CHECK(format_duration(5 * 86400 + 3 * 3600 + 100) == "5d03h");
  CHECK(format_duration(-1) == "--");
  CHECK(format_duration(std::nan("")) == "--");

  // 12.3k img/s with 45.9M images left: 3732 s = 1h02m.
  Progress p(12668900 + 45900000, 0, 5.0);
  CHECK(p.line(12300000, 1000) == "12.3M/58.6M images (21.0%), 12.3k img/s, ETA 1h02m");
  CHECK(p.rate(12300000, 1000) == doctest::Approx(12300.0));
  // Images done before a resume do not inflate the rate.
  Progress resumed(1000000, 400000);
  CHECK(resumed.line(500000, 10) == "500k/1.00M images (50.0%), 10.0k img/s, ETA 50s");
  CHECK(resumed.line(400000, 0) == "400k/1.00M images (40.0%), 0.00 img/s, ETA --");
  CHECK(resumed.line(1000000, 60) == "1.00M/1.00M images (100.0%), 10.0k img/s, ETA 0s");
  // due(): at most once per interval.
  CHECK(!p.due(1.0));
  CHECK(p.due(5.0));
  CHECK(!p.due(9.9));
  CHECK(p.due(10.0));
}
