// stream-export --checkpoint FILE --out MODEL.safetensors [--config CONFIG] [--dump-logits FILE]:
// the checkpoint's model as a safetensors state_dict that torchvision's ResNet loads as is.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "app/cli.hpp"
#include "config/load.hpp"
#include "io/safetensors.hpp"
#include "train/checkpoint.hpp"
#include "train/resnet.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-export --checkpoint FILE --out MODEL.safetensors [--config CONFIG [--set k=v]...]\n"
    "                     [--dump-logits FILE [--images N] [--size S]]\n"
    "Writes the model of checkpoint FILE (from <run>/checkpoints/) as a safetensors state_dict with\n"
    "torchvision's key names (conv1.weight, bn1.running_mean, layer1.0.conv1.weight, ..., fc.bias;\n"
    "num_batches_tracked as int64), atomically. At width 1 it loads into\n"
    "torchvision.models.resnet50(num_classes=...) (or resnet18/34) with load_state_dict. The\n"
    "architecture, width and class count come from the checkpoint; with --config they must match\n"
    "its [model] section.\n"
    "  --dump-logits FILE  also write FILE (safetensors): \"input\", N seeded N(0,1) images of 3 x S x S,\n"
    "                      and \"logits\", the model's eval-mode output on them (tools/check_export.py)\n"
    "  --images N          images in the dump (default 4)\n"
    "  --size S            their side in pixels (default 224)\n"
    "  --help              this text\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-export", [&] {
    const synth::cli::Args args(argc, argv, {"help"},
                                {"checkpoint", "config", "set", "out", "dump-logits", "images", "size"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.positional().empty()) throw synth::InputError("unexpected argument '" + args.positional()[0] + "'");
    for (const char* key : {"checkpoint", "out"})
      if (!args.has(key)) throw synth::InputError(std::string("missing --") + key + " (see --help)");
    if (args.has("set") && !args.has("config")) throw synth::InputError("--set needs --config");
    const std::string checkpoint = args.get("checkpoint"), out = args.get("out");
    const long long images = args.get_int("images", 4), size = args.get_int("size", 224);
    if (images < 1 || images > 4096) throw synth::InputError("--images must be in 1..4096, got " + std::to_string(images));
    if (size < 1 || size > 4096) throw synth::InputError("--size must be in 1..4096, got " + std::to_string(size));
    std::error_code ec;
    if (!std::filesystem::is_regular_file(checkpoint, ec))
      throw synth::InputError("--checkpoint: '" + checkpoint + "' does not exist or is not a file");
    for (const std::string& path : {out, args.get("dump-logits")}) {
      if (path.empty()) continue;
      const std::filesystem::path parent = std::filesystem::absolute(path).parent_path();
      if (!std::filesystem::is_directory(parent, ec))
        throw synth::InputError("'" + path + "': folder '" + parent.string() + "' does not exist");
    }

    const synth::TrainState info = synth::read_checkpoint_state(checkpoint);
    synth::ResNetSpec spec{info.arch, info.width, int(info.num_classes)};
    if (args.has("config")) {
      // Only [model] is compared with the checkpoint: no input path of the config is opened.
      const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
      spec = synth::ResNetSpec{cfg.model.arch, cfg.model.width, cfg.model.num_classes};
    }
    synth::ResNet model(spec);
    // Checks the checkpoint against spec: with --config, a mismatch names both settings.
    synth::load_checkpoint(checkpoint, *model, nullptr, spec.arch, spec.width, spec.num_classes);
    model->eval();

    char width[32];
    std::snprintf(width, sizeof width, "%.17g", spec.width);
    const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                         {"arch", spec.arch},
                                                         {"width", width},
                                                         {"num_classes", std::to_string(spec.num_classes)},
                                                         {"images_trained", std::to_string(info.images_seen)},
                                                         {"checkpoint", checkpoint}};
    const auto state = synth::module_state_dict(*model);
    synth::save_safetensors(out, state, metadata);
    std::printf("%s: %zu tensors of %s width %g, %d classes (trained on %llu images)\n", out.c_str(), state.size(),
                spec.arch.c_str(), spec.width, spec.num_classes, (unsigned long long)info.images_seen);

    if (args.has("dump-logits")) {
      // A fixed generator seed, so the same checkpoint always dumps the same input.
      torch::manual_seed(0);
      const torch::Tensor input = torch::randn({images, 3, size, size});
      torch::Tensor logits;
      {
        torch::NoGradGuard no_grad;
        logits = model->forward(input);
      }
      synth::save_safetensors(args.get("dump-logits"), {{"input", input}, {"logits", logits}}, metadata);
      std::printf("%s: input %lldx3x%lldx%lld and its logits\n", args.get("dump-logits").c_str(), images, size, size);
    }
    return 0;
  });
}
