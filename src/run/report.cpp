#include "run/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "run/progress.hpp"
#include "run/run_dir.hpp"

namespace synth {
namespace fs = std::filesystem;
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;  // (images, value)
};

// One line chart as inline SVG: x = images seen, y = the series' values; axis ends labelled.
std::string chart(const std::string& title, const std::vector<Series>& series) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const Series& s : series)
    for (const auto& p : s.points) {
      if (!std::isfinite(p.second)) continue;
      x0 = std::min(x0, p.first), x1 = std::max(x1, p.first);
      y0 = std::min(y0, p.second), y1 = std::max(y1, p.second);
    }
  std::ostringstream o;
  o << "<figure><figcaption>" << escape(title) << "</figcaption>";
  if (x0 > x1) return o.str() + "<p>no data</p></figure>";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + (y0 == 0 ? 1 : std::abs(y0) * 0.1);
  const double W = 520, H = 220, L = 60, B = 30, T = 10, R = 10;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - B); };
  o << "<svg width=\"" << W << "\" height=\"" << H << "\" xmlns=\"http://www.w3.org/2000/svg\">"
    << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"#999\"/>"
    << "<text x=\"" << L - 4 << "\" y=\"" << T + 10 << "\" text-anchor=\"end\" font-size=\"11\">" << number(y1) << "</text>"
    << "<text x=\"" << L - 4 << "\" y=\"" << H - B << "\" text-anchor=\"end\" font-size=\"11\">" << number(y0) << "</text>"
    << "<text x=\"" << L << "\" y=\"" << H - 12 << "\" font-size=\"11\">" << escape(format_count(uint64_t(x0))) << "</text>"
    << "<text x=\"" << W - R << "\" y=\"" << H - 12 << "\" text-anchor=\"end\" font-size=\"11\">"
    << escape(format_count(uint64_t(x1))) << " images</text>";
  double legend_x = L + 8;
  for (const Series& s : series) {
    o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"1.5\" points=\"";
    for (const auto& p : s.points)
      if (std::isfinite(p.second)) o << number(px(p.first)) << "," << number(py(p.second)) << " ";
    o << "\"/>";
    if (series.size() > 1) {
      o << "<text x=\"" << legend_x << "\" y=\"" << T + 14 << "\" font-size=\"11\" fill=\"" << s.color << "\">"
        << escape(s.name) << "</text>";
      legend_x += 12 + 7 * double(s.name.size());
    }
  }
  o << "</svg></figure>";
  return o.str();
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string render_report(const fs::path& run_dir) {
  const fs::path metrics_file = run_dir / "metrics.jsonl";
  std::error_code ec;
  if (!fs::is_regular_file(metrics_file, ec))
    throw InputError("'" + metrics_file.string() + "' does not exist (not a run directory?)");
  std::vector<nlohmann::json> lines;
  {
    std::ifstream in(metrics_file);
    std::string line;
    size_t number_of_line = 0;
    std::vector<std::string> all;
    while (std::getline(in, line)) all.push_back(line);
    for (const std::string& l : all) {
      ++number_of_line;
      if (l.empty()) continue;
      nlohmann::json j = nlohmann::json::parse(l, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        if (number_of_line == all.size()) break;  // the last line of a killed run may be cut
        throw InputError(metrics_file.string() + ":" + std::to_string(number_of_line) + ": not a JSON object");
      }
      lines.push_back(std::move(j));
    }
  }
  Series loss{"loss", "#c0392b", {}}, lr{"lr", "#2c3e50", {}}, rate{"images/s", "#27ae60", {}},
      ring{"ring occupancy", "#8e44ad", {}};
  std::map<std::string, std::pair<Series, Series>> evals;
  const nlohmann::json* summary = nullptr;
  for (const nlohmann::json& j : lines) {
    const double images = j.value("images", 0.0);
    if (j.contains("loss")) {
      loss.points.emplace_back(images, j.value("loss", NAN));
      lr.points.emplace_back(images, j.value("lr", NAN));
      rate.points.emplace_back(images, j.value("images_per_s", NAN));
      const double slots = j.value("ring_slots", 0.0);
      ring.points.emplace_back(images, slots > 0 ? j.value("ring_occupancy", 0.0) / slots : NAN);
    } else if (j.value("event", "") == "eval") {
      auto& e = evals[j.value("set", "eval")];
      e.first.name = j.value("set", "eval") + " top-1";
      e.first.color = "#2980b9";
      e.second.name = j.value("set", "eval") + " top-5";
      e.second.color = "#16a085";
      e.first.points.emplace_back(images, 100 * j.value("top1", NAN));
      e.second.points.emplace_back(images, 100 * j.value("top5", NAN));
    } else if (j.value("event", "") == "summary") {
      summary = &j;
    }
  }

  std::ostringstream o;
  const std::string name = run_dir.filename().empty() ? run_dir.parent_path().filename().string() : run_dir.filename().string();
  o << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>synthstream run " << escape(name) << "</title>"
    << "<style>body{font-family:sans-serif;margin:2em;max-width:1150px}figure{display:inline-block;margin:0.5em}"
       "figcaption{font-weight:bold}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
       "text-align:right}pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}img{max-width:100%;"
       "image-rendering:pixelated}</style></head><body>"
    << "<h1>synthstream run " << escape(name) << "</h1>";
  if (summary) {
    o << "<h2>Summary</h2><table>";
    for (const char* key : {"images_produced", "images_trained", "images_seen", "steps", "duplicates", "gaps",
                            "exactly_once", "interrupted", "seconds", "eval_set", "top1", "top5"})
      if (summary->contains(key)) o << "<tr><th>" << key << "</th><td>" << escape(summary->at(key).dump()) << "</td></tr>";
    o << "</table>";
    if (summary->contains("eval") && summary->at("eval").is_array() && !summary->at("eval").empty()) {
      o << "<h3>Last evaluation, every set</h3><table><tr><th>set</th><th>images</th><th>skipped</th>"
        << "<th>top-1 %</th><th>top-5 %</th></tr>";
      for (const nlohmann::json& e : summary->at("eval")) {
        char acc[64];
        std::snprintf(acc, sizeof acc, "<td>%.2f</td><td>%.2f</td>", 100 * e.value("top1", NAN), 100 * e.value("top5", NAN));
        o << "<tr><td>" << escape(e.value("set", "")) << "</td><td>" << e.value("images", 0) << "</td><td>"
          << e.value("skipped", 0) << "</td>" << acc << "</tr>";
      }
      o << "</table>";
    }
  } else {
    o << "<p>No summary yet: the run is still going, or it was stopped before its end.</p>";
  }
  o << "<h2>Training</h2>" << chart("loss", {loss}) << chart("learning rate", {lr})
    << chart("trained images/s", {rate}) << chart("ring occupancy (fraction of slots)", {ring});
  if (!evals.empty()) {
    o << "<h2>Evaluation on real images (%)</h2>";
    for (const auto& e : evals) o << chart(e.first, {e.second.first, e.second.second});
  }
  std::vector<fs::path> sheets;
  if (fs::is_directory(run_dir / "samples", ec))
    for (const auto& entry : fs::directory_iterator(run_dir / "samples", ec))
      if (entry.path().extension() == ".png") sheets.push_back(entry.path());
  std::sort(sheets.begin(), sheets.end());
  if (!sheets.empty()) {
    o << "<h2>Samples</h2>";
    for (const fs::path& p : sheets) {
      const std::string rel = "samples/" + p.filename().string();
      o << "<figure><figcaption>" << escape(p.filename().string()) << "</figcaption><img src=\"" << escape(rel)
        << "\" alt=\"" << escape(rel) << "\"></figure>";
    }
  }
  if (fs::is_regular_file(run_dir / "config.toml", ec))
    o << "<h2>Effective config</h2><pre>" << escape(slurp(run_dir / "config.toml")) << "</pre>";
  o << "</body></html>\n";
  return o.str();
}

fs::path write_report(const fs::path& run_dir) {
  const fs::path file = run_dir / "report.html";
  write_file_atomic(file, render_report(run_dir));
  return file;
}

}  // namespace synth
