// The HTML report from a run directory: plots from metrics.jsonl, the summary, sample sheets,
// the escaped config; a corrupt metrics line is an error naming file and line, except a last
// line cut by a crash.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "support/scratch_dir.hpp"
#include "run/report.hpp"

namespace fs = std::filesystem;

namespace {

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("the report plots every training and eval series and links the sample sheets") {
  synth::test::ScratchDir run("report");
  fs::create_directories(run.path / "samples");
  {
    std::ofstream m(run.path / "metrics.jsonl");
    for (int step = 10; step <= 50; step += 10)
      m << "{\"step\":" << step << ",\"images\":" << step * 64 << ",\"loss\":" << 2.5 - step * 0.01
        << ",\"lr\":0.1,\"images_per_s\":900,\"ring_occupancy\":12,\"ring_slots\":64}\n";
    m << "{\"event\":\"eval\",\"images\":3200,\"set\":\"fmnist-t10k\",\"top1\":0.71,\"top5\":0.98}\n";
    m << "{\"event\":\"summary\",\"images_trained\":3200,\"duplicates\":0,\"gaps\":0,\"exactly_once\":true}\n";
    m << "{\"event\":\"summ";  // cut by a crash: skipped
  }
  std::ofstream(run.path / "config.toml") << "[run]\nname = \"a<b\"\n";
  std::ofstream(run.path / "samples" / "generated-000000003200.png") << "png";
  const std::string html = synth::render_report(run.path);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count(html, "<svg") == 5);       // loss, lr, images/s, ring, one eval set
  CHECK(count(html, "<polyline") == 6);  // the eval chart has top-1 and top-5
  CHECK(html.find("fmnist-t10k top-1") != std::string::npos);
  CHECK(html.find("<th>exactly_once</th><td>true</td>") != std::string::npos);
  CHECK(html.find("src=\"samples/generated-000000003200.png\"") != std::string::npos);
  CHECK(html.find("name = &quot;a&lt;b&quot;") != std::string::npos);
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));  // nothing fetched from a network
  CHECK(html.find("<script") == std::string::npos);
  const fs::path file = synth::write_report(run.path);
  CHECK(file == run.path / "report.html");
  CHECK(fs::file_size(file) == html.size());
}

TEST_CASE("a run without metrics, or with a corrupt line inside, is an InputError naming it") {
  synth::test::ScratchDir run("report");
  CHECK_THROWS_WITH_AS(synth::render_report(run.path), doctest::Contains("metrics.jsonl' does not exist"), synth::InputError);
  std::ofstream(run.path / "metrics.jsonl") << "{\"step\":1,\"images\":8,\"loss\":2}\nnot json\n{\"step\":2}\n";
  CHECK_THROWS_WITH_AS(synth::render_report(run.path), doctest::Contains("metrics.jsonl:2: not a JSON object"),
                       synth::InputError);
  std::ofstream(run.path / "metrics.jsonl") << "{\"step\":1,\"images\":8,\"loss\":2}\n";
  CHECK(synth::render_report(run.path).find("No summary yet") != std::string::npos);
}
