// stream-sd-train: trains a small Stable Diffusion v1 model from scratch in the diffusers layout
// (diffusion/sd_train.hpp) on Fashion-MNIST's 60,000 training images, conditioned on the prompt
// stream of a run config. models/fmnist-sd was made with
//   build/bin/stream-sd-train --config configs/smoke.toml --model models/fmnist-sd
// (its MODEL_CARD.md gives the figures). The t10k split is never read: it is the real test set.
#include <cstdio>
#include <filesystem>
#include <string>

#include <torch/torch.h>

#include "app/cli.hpp"
#include "config/load.hpp"
#include "data/dataset.hpp"
#include "diffusion/model_config.hpp"
#include "diffusion/sd_train.hpp"
#include "prompts/prompt_stream.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-sd-train --config CFG --model DIR [--data FMNIST_DIR] [--seed S] [--vae-steps N]\n"
    "                       [--unet-steps N] [--vae-batch B] [--unet-batch B] [--limit N] [--threads T]\n"
    "Trains DIR's VAE, text encoder and U-Net (their config.json files give the sizes) on the\n"
    "Fashion-MNIST training split, with CFG's prompt stream ([prompts], run.seed); writes the weights\n"
    "into DIR and the per-step losses into DIR/train_log.jsonl.\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

synth::SdTrainData load_fmnist_train(const std::string& dir, long long limit, int64_t size) {
  const auto d = synth::first_items(synth::open_idx_dataset(dir, "train"), limit);
  const int64_t n = d->size();
  auto gray = torch::empty({n, 28, 28}, torch::kUInt8);
  synth::SdTrainData data;
  for (int64_t i = 0; i < n; ++i) {
    const auto img = d->load(i);
    if (img.height != 28 || img.width != 28) throw synth::InputError(d->describe(i) + ": not a 28x28 image");
    auto* dst = gray[i].data_ptr<uint8_t>();
    for (int64_t p = 0; p < 28 * 28; ++p) dst[p] = img.pixels[size_t(p) * 3];
    data.labels.push_back(d->label(i));
  }
  data.images = synth::pad_gray_to_rgb(gray, size);
  return data;
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-sd-train", [&] {
    const synth::cli::Args args(argc, argv, {"help"},
                                {"config", "set", "model", "data", "seed", "vae-steps", "unet-steps", "vae-batch",
                                 "unet-batch", "limit", "threads"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.positional().empty()) throw synth::InputError("unexpected argument '" + args.positional()[0] + "'");
    if (!args.has("config") || !args.has("model")) throw synth::InputError("give --config CFG and --model DIR (see --help)");
    synth::SdTrainOptions o;
    o.model_dir = args.get("model");
    if (!std::filesystem::is_directory(o.model_dir)) throw synth::InputError("--model: '" + o.model_dir + "' is not a directory");
    o.seed = uint64_t(args.get_int("seed", 0));
    o.vae_steps = args.get_int("vae-steps", o.vae_steps);
    o.unet_steps = args.get_int("unet-steps", o.unet_steps);
    o.vae_batch = args.get_int("vae-batch", o.vae_batch);
    o.unet_batch = args.get_int("unet-batch", o.unet_batch);
    for (const auto& [flag, value] : {std::pair<const char*, int64_t>{"vae-steps", o.vae_steps}, {"unet-steps", o.unet_steps},
                                      {"vae-batch", o.vae_batch}, {"unet-batch", o.unet_batch}})
      if (value < 1) throw synth::InputError(std::string("--") + flag + " must be >= 1");
    const long long threads = args.get_int("threads", 0);
    if (threads < 0) throw synth::InputError("--threads must be >= 0 (0 = LibTorch's default)");
    if (threads > 0) torch::set_num_threads(int(threads));
    const long long limit = args.get_int("limit", 0);
    if (limit < 0) throw synth::InputError("--limit must be >= 0");

    const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
    const auto prompts = synth::PromptStream::of_run(cfg);
    if (prompts.classes().size() != 10)
      throw synth::InputError(args.get("config") + ": prompts.class_file must list Fashion-MNIST's 10 classes in label order");
    const auto vae = synth::load_model_dir(o.model_dir).vae;
    const int64_t size = vae.sample_size.value_or(32);
    const auto data = load_fmnist_train(args.get("data", "/usr/share/datasets/fashion-mnist"), limit, size);
    std::printf("stream-sd-train: %lld training images, %s, seed %llu\n", (long long)data.images.size(0),
                o.model_dir.c_str(), (unsigned long long)o.seed);
    const auto r = synth::train_sd(o, data, prompts, [](const std::string& line) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    });
    std::printf("done in %.0f s: vae L1 %.4f, KL %.1f, scaling_factor %.5f; unet loss %.4f -> %.4f\n", r.seconds, r.vae_l1,
                r.vae_kl, r.scaling_factor, r.unet_loss_first, r.unet_loss_last);
    return 0;
  });
}
