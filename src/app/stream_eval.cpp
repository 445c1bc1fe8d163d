// stream-eval --checkpoint FILE --config CONFIG [--set section.key=value]... [--json]: top-1/top-5
// of a trained checkpoint on the real evaluation set of CONFIG ([eval]; the model is [model]).
#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "app/cli.hpp"
#include "config/load.hpp"
#include "eval/evaluator.hpp"
#include "train/checkpoint.hpp"
#include "train/resnet.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-eval --checkpoint FILE --config CONFIG [--set section.key=value]... [--json]\n"
    "Evaluates the checkpoint FILE (from <run>/checkpoints/) on the [eval] set of CONFIG (usually the\n"
    "run's own config.toml) and prints top-1/top-5.\n"
    "  --set k=v   override one key (TOML value); repeatable, e.g. --set eval.limit=1000\n"
    "  --json      print one JSON object instead of a line of text\n"
    "  --help      this text\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-eval", [&] {
    const synth::cli::Args args(argc, argv, {"help", "json"}, {"checkpoint", "config", "set"});
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

    synth::ResNet model(synth::ResNetSpec{cfg.model.arch, cfg.model.width, cfg.model.num_classes});
    const synth::TrainState state = synth::load_checkpoint(checkpoint, *model, nullptr, cfg.model.arch, cfg.model.width,
                                                           cfg.model.num_classes);
    const synth::Evaluator evaluator(cfg);
    if (cfg.train.threads > 0) torch::set_num_threads(cfg.train.threads);
    model->eval();
    const auto results = evaluator([&](const torch::Tensor& x) {
      torch::NoGradGuard no_grad;
      return model->forward(x);
    });
    for (const synth::EvalResult& r : results) {
      if (args.has("json")) {
        const nlohmann::json j = {{"checkpoint", checkpoint}, {"images_trained", state.images_seen}, {"set", r.set},
                                  {"images", r.images},       {"top1", r.top1},                    {"top5", r.top5}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s: %s, %lld images: top-1 %.2f%%, top-5 %.2f%% (trained on %llu images)\n", checkpoint.c_str(),
                    r.set.c_str(), (long long)r.images, 100 * r.top1, 100 * r.top5, (unsigned long long)state.images_seen);
      }
    }
    return 0;
  });
}
