// stream-report RUN_DIR: writes RUN_DIR/report.html, the self-contained HTML report of a run
// (loss, lr, throughput, ring occupancy and accuracy plots, sample sheets, effective config).
// stream-train writes it at the end of every run; this re-creates it, e.g. while a run goes on.
#include <cstdio>
#include <string>

#include "app/cli.hpp"
#include "run/report.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-report RUN_DIR\n"
    "Writes RUN_DIR/report.html from RUN_DIR/metrics.jsonl, config.toml and samples/ (opens in any\n"
    "browser, no network needed).\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-report", [&] {
    const synth::cli::Args args(argc, argv, {"help"}, {});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.positional().size() != 1)
      throw synth::InputError(args.positional().empty() ? "missing RUN_DIR (see --help)"
                                                        : "unexpected argument '" + args.positional()[1] + "'");
    std::printf("%s\n", synth::write_report(args.positional()[0]).c_str());
    return 0;
  });
}
