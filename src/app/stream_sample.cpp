// stream-sample: look at what the generator would make.
//   --tokenizer DIR --tokenize TEXT        the 77 CLIP token ids of TEXT, space-separated, one line
//   --config CFG --list-prompts N [--start I] [--set k=v]...
//                                          entries [I, I+N) of the run's prompt stream
//   --model DIR --prompt TEXT ...          Stable Diffusion sampling (flags parsed and checked now;
//                                          the sampler arrives with the Stable Diffusion issue)
#include <cstdio>
#include <filesystem>
#include <string>

#include "app/cli.hpp"
#include "config/load.hpp"
#include "prompts/prompt_stream.hpp"
#include "text/tokenizer.hpp"

namespace {

constexpr const char* kUsage =
    "usage: stream-sample --tokenizer DIR --tokenize TEXT\n"
    "       stream-sample --config CFG --list-prompts N [--start I] [--set section.key=value]...\n"
    "       stream-sample --model DIR --prompt TEXT [--prompt TEXT]... [--scheduler pndm|ddim|dpmpp2m|euler]\n"
    "                     [--steps N] [--guidance G] [--device cpu|cuda] [--dtype fp32|fp16]\n"
    "                     [--init-latents FILE] [--out-latents FILE] [--width W] [--height H]\n"
    "                     [--seed S] [--index I] [--out DIR]\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

void list_prompts(const synth::cli::Args& args) {
  if (!args.has("config")) throw synth::InputError("--list-prompts needs --config CFG");
  const long long n = args.get_int("list-prompts", 0), start = args.get_int("start", 0);
  if (n < 0 || start < 0) throw synth::InputError("--list-prompts and --start must be >= 0");
  const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"));
  synth::PromptStreamConfig stream_cfg;
  static_cast<synth::PromptsConfig&>(stream_cfg) = cfg.prompts;
  stream_cfg.seed = cfg.run.seed;
  const auto stream = synth::PromptStream::from_config(stream_cfg);
  std::fputs(synth::format_prompt_listing(stream, uint64_t(start), uint64_t(n)).c_str(), stdout);
}

void check_sampling_flags(const synth::cli::Args& args) {
  const std::string model = args.get("model");
  std::error_code ec;
  if (!std::filesystem::is_directory(model, ec)) throw synth::InputError("--model: '" + model + "' is not a directory");
  if (args.all("prompt").empty()) throw synth::InputError("--model needs at least one --prompt TEXT");
  const std::string scheduler = args.get("scheduler", "pndm"), device = args.get("device", "cpu"),
                    dtype = args.get("dtype", "fp32");
  if (scheduler != "pndm" && scheduler != "ddim" && scheduler != "dpmpp2m" && scheduler != "euler")
    throw synth::InputError("--scheduler must be pndm, ddim, dpmpp2m or euler, got '" + scheduler + "'");
  if (device != "cpu" && device != "cuda") throw synth::InputError("--device must be cpu or cuda, got '" + device + "'");
  if (dtype != "fp32" && dtype != "fp16") throw synth::InputError("--dtype must be fp32 or fp16, got '" + dtype + "'");
  if (args.get_int("steps", 50) < 1) throw synth::InputError("--steps must be >= 1");
  args.get_double("guidance", 7.5);
  if (args.get_int("width", 512) % 8 || args.get_int("height", 384) % 8)
    throw synth::InputError("--width and --height must be multiples of 8");
  for (const char* key : {"init-latents"})
    if (args.has(key) && !std::filesystem::is_regular_file(args.get(key), ec))
      throw synth::InputError(std::string("--") + key + ": '" + args.get(key) + "' does not exist");
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-sample", [&] {
    const synth::cli::Args args(argc, argv, {"help"},
                                {"tokenizer", "tokenize", "config", "list-prompts", "start", "set", "model", "prompt",
                                 "scheduler", "steps", "guidance", "device", "dtype", "init-latents", "out-latents",
                                 "width", "height", "seed", "index", "out"});
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
      check_sampling_flags(args);
      std::printf("stream-sample: not yet implemented: Stable Diffusion sampling (arguments are valid)\n");
      return 0;
    }
    throw synth::InputError("nothing to do: give --tokenize, --list-prompts or --model (see --help)");
  });
}
