// stream-sample: look at what the generator would make.
//   --tokenizer DIR --tokenize TEXT        the 77 CLIP token ids of TEXT, space-separated, one line
//   --config CFG --list-prompts N [--start I] [--set k=v]...
//                                          entries [I, I+N) of the run's prompt stream
//   --model DIR --prompt TEXT ...          Stable Diffusion sampling, one image per prompt
//   --model DIR --config CFG --index I [--count N]
//                                          re-creates images I..I+N-1 of a run (prompts from its
//                                          prompt stream, noise from run.seed)
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "diffusion/sampler.hpp"
#include "io/image.hpp"
#include "io/safetensors.hpp"

#include "app/cli.hpp"
#include "config/load.hpp"
#include "dist/env.hpp"
#include "prompts/prompt_stream.hpp"
#include "text/tokenizer.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-sample --tokenizer DIR --tokenize TEXT\n"
    "       stream-sample --config CFG --list-prompts N [--start I] [--set section.key=value]...\n"
    "       stream-sample --model DIR --prompt TEXT [--prompt TEXT]... [--scheduler pndm|ddim|dpmpp2m|euler]\n"
    "                     [--steps N] [--guidance G] [--device cpu|cuda|cuda:N] [--dtype fp32|fp16]\n"
    "                     [--init-latents FILE] [--out-latents FILE] [--width W] [--height H]\n"
    "                     [--seed S] [--index I] [--out DIR]\n"
    "       stream-sample --model DIR --config CFG --index I [--count N] [sampling flags] [--out DIR]\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

void list_prompts(const synth::cli::Args& args) {
  if (!args.has("config")) throw synth::InputError("--list-prompts needs --config CFG");
  const long long n = args.get_int("list-prompts", 0), start = args.get_int("start", 0);
  if (n < 0 || start < 0) throw synth::InputError("--list-prompts and --start must be >= 0");
  // The prompt stream alone: it opens its own files (prompts.*) and names any it cannot read.
  const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
  synth::PromptStreamConfig stream_cfg;
  static_cast<synth::PromptsConfig&>(stream_cfg) = cfg.prompts;
  stream_cfg.seed = cfg.run.seed;
  const auto stream = synth::PromptStream::from_config(stream_cfg);
  std::fputs(synth::format_prompt_listing(stream, uint64_t(start), uint64_t(n)).c_str(), stdout);
}

void sample(const synth::cli::Args& args) {
  const std::string model = args.get("model");
  std::error_code ec;
  if (!std::filesystem::is_directory(model, ec)) throw synth::InputError("--model: '" + model + "' is not a directory");
  const std::string device_flag = args.get("device", "cpu"), dtype = args.get("dtype", "fp32");
  // "cuda" is this process's LOCAL_RANK GPU, as for generator.device (dist/env.hpp).
  const torch::Device device = synth::resolve_device(device_flag, "--device", synth::dist_env_from_process());
  if (dtype != "fp32" && dtype != "fp16") throw synth::InputError("--dtype must be fp32 or fp16, got '" + dtype + "'");
  synth::require_device(device, "--device", device_flag);
  synth::SamplerOptions o;
  o.scheduler = args.get("scheduler", "pndm");
  o.steps = args.get_int("steps", 50);
  o.guidance = args.get_double("guidance", 7.5);
  if (!std::isfinite(o.guidance)) throw synth::InputError("--guidance must be finite");

  // Prompts and image indices: given prompts, or entries of a run's prompt stream.
  std::vector<std::string> prompts = args.all("prompt");
  const long long first = args.get_int("index", 0);
  if (first < 0) throw synth::InputError("--index must be >= 0");
  uint64_t seed = uint64_t(args.get_int("seed", 0));
  if (args.has("config")) {
    if (!prompts.empty()) throw synth::InputError("give either --prompt or --config (the run's prompt stream), not both");
    const long long count = args.get_int("count", 1);
    if (count < 1) throw synth::InputError("--count must be >= 1");
    // The run's prompt stream only; the model is --model, not generator.model_dir.
    const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
    synth::PromptStreamConfig stream_cfg;
    static_cast<synth::PromptsConfig&>(stream_cfg) = cfg.prompts;
    stream_cfg.seed = seed = cfg.run.seed;
    const auto stream = synth::PromptStream::from_config(stream_cfg);
    for (long long i = 0; i < count; ++i) prompts.push_back(stream.at(uint64_t(first + i)).prompt);
  }
  if (prompts.empty()) throw synth::InputError("--model needs at least one --prompt TEXT (or --config CFG --index I)");
  std::vector<uint64_t> indices;
  for (size_t i = 0; i < prompts.size(); ++i) indices.push_back(uint64_t(first) + i);

  synth::StableDiffusion sd(model, device, dtype == "fp16" ? torch::kFloat16 : torch::kFloat32);
  torch::Tensor noise;
  if (args.has("init-latents")) {
    const std::string path = args.get("init-latents");
    noise = synth::SafeTensorsFile::open(path).tensor("latents");
    if (noise.dim() != 4 || noise.size(0) != int64_t(prompts.size()))
      throw synth::InputError(path + ": tensor 'latents' must be N x C x h x w with N = " + std::to_string(prompts.size()) +
                              " (one per prompt)");
    const int64_t f = sd.upscale();
    o.height = args.get_int("height", noise.size(2) * f);
    o.width = args.get_int("width", noise.size(3) * f);
  } else {
    o.width = args.get_int("width", 512);
    o.height = args.get_int("height", 384);
    noise = sd.initial_noise(indices, seed, o.width, o.height);
  }
  const auto out = sd.sample(prompts, noise, o);
  const std::string dir = args.get("out", "samples");
  std::filesystem::create_directories(dir, ec);
  if (ec) throw synth::InputError("--out: cannot create '" + dir + "': " + ec.message());
  if (args.has("out-latents")) synth::save_safetensors(args.get("out-latents"), {{"latents", out.latents}});
  for (size_t i = 0; i < out.images.size(); ++i) {
    const std::string png = dir + "/" + std::to_string(indices[i]) + ".png";
    synth::write_png(png, out.images[i]);
    std::printf("%llu\t%s\t%s\n", (unsigned long long)indices[i], png.c_str(), prompts[i].c_str());
  }
  synth::write_png(dir + "/contact_sheet.png", synth::contact_sheet(out.images));
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-sample", [&] {
    const synth::cli::Args args(argc, argv, {"help"},
                                {"tokenizer", "tokenize", "config", "list-prompts", "start", "set", "model", "prompt",
                                 "scheduler", "steps", "guidance", "device", "dtype", "init-latents", "out-latents",
                                 "width", "height", "seed", "index", "count", "out"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.positional().empty()) throw synth::InputError("unexpected argument '" + args.positional()[0] + "'");
    if (args.has("tokenize")) {
      if (!args.has("tokenizer")) throw synth::InputError("--tokenize needs --tokenizer DIR (a tokenizer/ folder)");
      const synth::ClipTokenizer tokenizer(args.get("tokenizer"));
      std::string line;
      for (const int64_t id : tokenizer.encode(args.get("tokenize"))) line += (line.empty() ? "" : " ") + std::to_string(id);
      std::printf("%s\n", line.c_str());
      return 0;
    }
    if (args.has("list-prompts")) {
      list_prompts(args);
      return 0;
    }
    if (args.has("model")) {
      sample(args);
      return 0;
    }
    throw synth::InputError("nothing to do: give --tokenize, --list-prompts or --model (see --help)");
  });
}
