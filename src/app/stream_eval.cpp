// stream-eval --checkpoint FILE --config CONFIG [--eval NAME=PATH[,option=value]...]... [--set k=v]...
// [--device cpu|cuda|cuda:N] [--json]: top-1/top-5 of a trained checkpoint on the evaluation sets of
// CONFIG ([eval]; the model is [model]) or on the sets given with --eval, as a table or JSON lines.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "app/cli.hpp"
#include "distributed/env.hpp"
#include "config/eval_sets.hpp"
#include "config/load.hpp"
#include "eval/evaluator.hpp"
#include "train/checkpoint.hpp"
#include "train/resnet.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-eval --checkpoint FILE --config CONFIG [--eval NAME=PATH[,option=value]...]...\n"
    "                   [--set section.key=value]... [--device cpu|cuda|cuda:N] [--json]\n"
    "Evaluates the checkpoint FILE (from <run>/checkpoints/) on the evaluation sets of CONFIG (usually\n"
    "the run's own config.toml: the eval.source set and every eval.sets entry) and prints top-1/top-5\n"
    "per set. Images: shorter side resized to eval.resize, centre crop eval.crop (antialiased bilinear).\n"
    "  --eval SET  evaluate on SET instead of the config's sets; repeatable. SET is NAME=PATH followed by\n"
    "              optional ,option=value parts (the syntax of eval.sets; PATH cannot contain ','):\n"
    "                layout=wnid     class folders named by WordNet id (default; ImageNet val, -Sketch, -R, -A)\n"
    "                layout=index    folders \"0\", \"1\", ... = positions in the class file (ImageNet-v2)\n"
    "                layout=sorted   sorted folder names are the labels 0..n-1\n"
    "                layout=idx      Fashion-MNIST IDX files (t10k split)\n"
    "                index_ids=FILE  layout=index: id list, line k names folder \"k\" (default: the class file)\n"
    "                classes=complete  rank all logits; every class of the class file needs a folder (default)\n"
    "                classes=partial   rank all logits; missing class folders are fine\n"
    "                classes=present   rank only the logits of classes that have a folder (ImageNet-R, -A)\n"
    "                unknown=skip    skip (and count) folders whose id is not in the class file (default: error)\n"
    "                limit=N         first N images in sorted order (default: eval.limit; 0 = all)\n"
    "              e.g. --eval imagenet-r=/data/imagenet-r,classes=present,unknown=skip\n"
    "              The class file is data.class_file, or prompts.class_file when data.source = \"synthetic\".\n"
    "  --set k=v   override one key (TOML value); repeatable, e.g. --set eval.on_corrupt=skip\n"
    "  --device D  cpu (default), cuda (this rank's GPU: LOCAL_RANK) or cuda:N\n"
    "  --json      one JSON object per set, one per line, instead of the table\n"
    "  --help      this text\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

std::string skipped_text(const synth::EvalSetReport& r) {
  std::string s;
  if (r.corrupt > 0) s += std::to_string(r.corrupt) + " unreadable";
  if (r.unknown_folders > 0)
    s += (s.empty() ? "" : ", ") + std::to_string(r.unknown_images) + " in " + std::to_string(r.unknown_folders) +
         " folders of unknown classes";
  return s.empty() ? "-" : s;
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-eval", [&] {
    const synth::cli::Args args(argc, argv, {"help", "json"}, {"checkpoint", "config", "set", "eval", "device"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.positional().empty()) throw synth::InputError("unexpected argument '" + args.positional()[0] + "'");
    for (const char* key : {"checkpoint", "config"})
      if (!args.has(key)) throw synth::InputError(std::string("missing --") + key + " (see --help)");
    const std::string checkpoint = args.get("checkpoint");
    // cpu | cuda (this process's LOCAL_RANK GPU) | cuda:N, as train.device (distributed/env.hpp).
    const std::string device_name = args.get("device", "cpu");
    const torch::Device device = synth::resolve_device(device_name, "--device", synth::dist_env_from_process());
    synth::require_device(device, "--device", device_name);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(checkpoint, ec))
      throw synth::InputError("--checkpoint: '" + checkpoint + "' does not exist or is not a file");
    // [model] and [eval]: the config's evaluation sets must exist unless --eval replaces them
    // (then those are checked below). Training data and SD weights are never opened.
    synth::Config cfg = synth::load_config(args.get("config"), args.all("set"),
                                           args.has("eval") ? synth::kNoInputs : synth::kEvalSets);
    if (args.has("eval")) {
      cfg.eval.source = "none";
      cfg.eval.sets = args.all("eval");
      for (const std::string& entry : cfg.eval.sets) {
        try {
          synth::parse_eval_set(entry);
        } catch (const synth::InputError& e) {
          throw synth::InputError(std::string("--eval ") + e.what());
        }
      }
      try {
        synth::check_eval_sets(cfg);
      } catch (const synth::InputError& e) {
        throw synth::InputError(std::string("--eval: ") + e.what());
      }
      synth::validate_config(cfg, synth::kEvalSets);  // and the class file labelling them
    }
    if (!synth::has_eval_sets(cfg))
      throw synth::InputError(cfg.source_file +
                              ": eval.source = \"none\" and eval.sets is empty: nothing to evaluate on (see --eval)");

    synth::ResNet model(synth::ResNetSpec{cfg.model.arch, cfg.model.width, cfg.model.num_classes});
    const synth::TrainState state = synth::load_checkpoint(checkpoint, *model, nullptr, cfg.model.arch, cfg.model.width,
                                                           cfg.model.num_classes);
    const synth::Evaluator evaluator(cfg);
    if (cfg.train.threads > 0) torch::set_num_threads(cfg.train.threads);
    model->to(device);
    model->eval();
    const auto reports = evaluator.evaluate([&](const torch::Tensor& x) {
      torch::NoGradGuard no_grad;
      return model->forward(x.to(device)).to(torch::kCPU);
    });

    if (args.has("json")) {
      for (const synth::EvalSetReport& r : reports) {
        const nlohmann::json j = {{"checkpoint", checkpoint},
                                  {"images_trained", state.images_seen},
                                  {"set", r.result.set},
                                  {"images", r.result.images},
                                  {"top1", r.result.top1},
                                  {"top5", r.result.top5},
                                  {"top1_hits", r.result.top1_hits},
                                  {"top5_hits", r.result.top5_hits},
                                  {"classes", r.classes},
                                  {"corrupt", r.corrupt},
                                  {"corrupt_examples", r.corrupt_examples},
                                  {"unknown_folders", r.unknown_folders},
                                  {"unknown_images", r.unknown_images}};
        std::printf("%s\n", j.dump().c_str());
      }
      return 0;
    }
    std::printf("%s: %s width %g, %lld classes, trained on %llu images\n", checkpoint.c_str(), cfg.model.arch.c_str(),
                cfg.model.width, (long long)cfg.model.num_classes, (unsigned long long)state.images_seen);
    size_t width = 3;
    for (const synth::EvalSetReport& r : reports) width = std::max(width, r.result.set.size());
    std::printf("%-*s %9s %8s %8s %8s  %s\n", int(width), "set", "images", "classes", "top-1", "top-5", "skipped");
    for (const synth::EvalSetReport& r : reports)
      std::printf("%-*s %9lld %8lld %7.2f%% %7.2f%%  %s\n", int(width), r.result.set.c_str(), (long long)r.result.images,
                  (long long)r.classes, 100 * r.result.top1, 100 * r.result.top5, skipped_text(r).c_str());
    for (const synth::EvalSetReport& r : reports)
      for (const std::string& example : r.corrupt_examples)
        std::printf("%s: skipped %s\n", r.result.set.c_str(), example.c_str());
    return 0;
  });
}
