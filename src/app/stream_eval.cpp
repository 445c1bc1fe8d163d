// stream-eval --checkpoint FILE --config CONFIG [--set section.key=value]...: top-1/top-5 of a
// trained checkpoint on the evaluation set of CONFIG. Arguments and config are parsed and validated
// in full now; the evaluation itself arrives with the checkpoint format.
#include <cstdio>
#include <filesystem>
#include <string>

#include "app/cli.hpp"
#include "config/load.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-eval --checkpoint FILE --config CONFIG [--set section.key=value]...\n"
    "Evaluates the checkpoint FILE (from <run>/checkpoints/) on the [eval] set of CONFIG and prints\n"
    "top-1/top-5.\n"
    "  --set k=v   override one key (TOML value); repeatable\n"
    "  --help      this text\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-eval", [&] {
    const synth::cli::Args args(argc, argv, {"help"}, {"checkpoint", "config", "set"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.positional().empty()) throw synth::InputError("unexpected argument '" + args.positional()[0] + "'");
    for (const char* key : {"checkpoint", "config"})
      if (!args.has(key)) throw synth::InputError(std::string("missing --") + key + " (see --help)");
    const std::string checkpoint = args.get("checkpoint");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(checkpoint, ec))
      throw synth::InputError("--checkpoint: '" + checkpoint + "' does not exist or is not a file");
    const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"));
    if (cfg.eval.source == "none") throw synth::InputError(cfg.source_file + ": eval.source = \"none\": nothing to evaluate on");
    std::printf("stream-eval: not yet implemented: evaluating checkpoint %s on %s (%s); config %s is valid\n",
                checkpoint.c_str(), cfg.eval.path.c_str(), cfg.eval.source.c_str(), cfg.source_file.c_str());
    return 0;
  });
}
