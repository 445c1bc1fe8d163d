// The HTML run report: one self-contained file (inline SVG plots, no scripts, no network) built
// from a run directory's metrics.jsonl, config.toml and samples/*.png, so a run can be judged in
// any browser, also on a machine with no network.
#pragma once
#include <filesystem>
#include <string>

namespace synth {

// Renders the report of run_dir as HTML. Throws InputError naming the file when metrics.jsonl is
// missing or a line of it is not a JSON object (a line cut by a crash at the very end is skipped).
std::string render_report(const std::filesystem::path& run_dir);

// Writes render_report(run_dir) to run_dir/report.html atomically; returns that path.
std::filesystem::path write_report(const std::filesystem::path& run_dir);

}  // namespace synth
