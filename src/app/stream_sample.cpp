// stream-sample: look at what the generator would make.
//   --tokenizer DIR --tokenize TEXT        the 77 CLIP token ids of TEXT, space-separated, one line
//   --config CFG --list-prompts N [--start I] [--set k=v]...
//                                          entries [I, I+N) of the run's prompt stream
//   --model DIR --prompt TEXT ...          Stable Diffusion sampling, one image per prompt
//   [--model DIR] --config CFG --index I [--count N]
//                                          re-creates images I..I+N-1 of a run bit for bit: prompts
//                                          from its prompt stream, noise from run.seed, every sampler
//                                          setting and the batching from [generator]; flags that
//                                          override a setting are reported
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "diffusion/sampler.hpp"
#include "io/image.hpp"
#include "io/safetensors.hpp"

#include "app/cli.hpp"
#include "config/load.hpp"
#include "distributed/env.hpp"
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
    "       stream-sample [--model DIR] --config CFG --index I [--count N] [--out DIR]\n"
    "                     (the run's generator settings; sampling flags override them, with a note)\n"
    "Exit status: 0 done, 2 bad input, 1 internal error.\n";

void list_prompts(const synth::cli::Args& args) {
  if (!args.has("config")) throw synth::InputError("--list-prompts needs --config CFG");
  const long long n = args.get_int("list-prompts", 0), start = args.get_int("start", 0);
  if (n < 0 || start < 0) throw synth::InputError("--list-prompts and --start must be >= 0");
  // The prompt stream alone: it opens its own files (prompts.*) and names any it cannot read.
  const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
  const auto stream = synth::PromptStream::of_run(cfg);
  std::fputs(synth::format_prompt_listing(stream, uint64_t(start), uint64_t(n)).c_str(), stdout);
}

struct Request {
  std::string model, device, dtype;
  synth::SamplerOptions options;
  std::vector<std::string> prompts;   // one per image
  std::vector<uint64_t> indices;      // global image index of each prompt (output name)
  std::vector<uint64_t> noise_keys;   // its noise key: the index, or index mod generator.unique_images
  uint64_t seed = 0;
  int64_t batch = 0;                  // images per sampler call (0 = all at once)
  std::vector<size_t> keep;           // positions of prompts/indices to write (default: all)
};

// --prompt TEXT...: the flags alone, with the sampler's defaults.
Request from_flags(const synth::cli::Args& args) {
  Request r;
  r.model = args.get("model");
  r.device = args.get("device", "cpu");
  r.dtype = args.get("dtype", "fp32");
  r.options.scheduler = args.get("scheduler", "pndm");
  r.options.steps = args.get_int("steps", 50);
  r.options.guidance = args.get_double("guidance", 7.5);
  r.options.width = args.get_int("width", 512);
  r.options.height = args.get_int("height", 384);
  r.prompts = args.all("prompt");
  if (r.prompts.empty()) throw synth::InputError("--model needs at least one --prompt TEXT (or --config CFG --index I)");
  const long long first = args.get_int("index", 0);
  if (first < 0) throw synth::InputError("--index must be >= 0");
  for (size_t i = 0; i < r.prompts.size(); ++i) r.indices.push_back(uint64_t(first) + i);
  r.noise_keys = r.indices;
  r.seed = uint64_t(args.get_int("seed", 0));
  return r;
}

// --config CFG --index I [--count N]: images I..I+N-1 exactly as the run made them. Every setting
// comes from [generator]; the run's generator made image i in the batch of generator.batch_size
// consecutive indices starting at a multiple of it (generate/generator.hpp), and a batch's pixels
// depend on its size through float reassociation, so the whole batch is re-made and images I..
// kept. (Exact for runs whose generator claims start at multiples of the batch: one generator
// rank, fresh or resumed at a checkpoint; otherwise equal up to a few 8-bit levels.)
Request from_run(const synth::cli::Args& args) {
  if (args.has("prompt")) throw synth::InputError("give either --prompt or --config (the run's prompt stream), not both");
  if (args.has("seed")) throw synth::InputError("--seed cannot be combined with --config: the noise seed is the run's run.seed");
  const long long first = args.get_int("index", 0), count = args.get_int("count", 1);
  if (first < 0) throw synth::InputError("--index must be >= 0");
  if (count < 1) throw synth::InputError("--count must be >= 1");
  const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
  const synth::GeneratorConfig& g = cfg.generator;
  Request r;
  r.model = args.get("model", g.model_dir);
  if (r.model.empty()) throw synth::InputError(cfg.source_file + ": generator.model_dir is empty; give --model DIR");
  if (args.has("model") && !g.model_dir.empty() && args.get("model") != g.model_dir)
    std::fprintf(stderr, "stream-sample: note: --model %s is not the run's generator.model_dir = %s\n", r.model.c_str(),
                 g.model_dir.c_str());
  // A flag that gives the run's own value changes nothing and is not reported.
  auto note = [&](const char* flag, const char* key, bool same, const std::string& run_value) {
    if (args.has(flag) && !same)
      std::fprintf(stderr, "stream-sample: note: --%s %s overrides %s = %s: the images are not the run's\n", flag,
                   args.get(flag).c_str(), key, run_value.c_str());
  };
  note("scheduler", "generator.scheduler", args.get("scheduler", g.scheduler) == g.scheduler, g.scheduler);
  note("steps", "generator.steps", args.get_int("steps", g.steps) == g.steps, std::to_string(g.steps));
  char guidance[32];
  std::snprintf(guidance, sizeof guidance, "%g", g.guidance);
  note("guidance", "generator.guidance", args.get_double("guidance", g.guidance) == g.guidance, guidance);
  note("width", "generator.width", args.get_int("width", g.width) == g.width, std::to_string(g.width));
  note("height", "generator.height", args.get_int("height", g.height) == g.height, std::to_string(g.height));
  note("device", "generator.device", args.get("device", g.device) == g.device, g.device);
  note("dtype", "generator.dtype", args.get("dtype", g.dtype) == g.dtype, g.dtype);
  r.device = args.get("device", g.device);
  r.dtype = args.get("dtype", g.dtype);
  r.options.scheduler = args.get("scheduler", g.scheduler);
  r.options.steps = args.get_int("steps", g.steps);
  r.options.guidance = args.get_double("guidance", g.guidance);
  r.options.width = args.get_int("width", g.width);
  r.options.height = args.get_int("height", g.height);
  r.seed = cfg.run.seed;
  r.batch = g.batch_size;
  const auto stream = synth::PromptStream::of_run(cfg);
  const uint64_t B = uint64_t(g.batch_size), lo = uint64_t(first) / B * B;
  uint64_t hi = (uint64_t(first + count) + B - 1) / B * B;
  if (cfg.train.total_images > 0) hi = std::max<uint64_t>(std::min<uint64_t>(hi, uint64_t(cfg.train.total_images)), first + count);
  const uint64_t unique = uint64_t(g.unique_images);
  for (uint64_t i = lo; i < hi; ++i) {
    const uint64_t content = unique ? i % unique : i;  // a fixed dataset repeated (generate/generator.hpp)
    r.indices.push_back(i);
    r.noise_keys.push_back(content);
    r.prompts.push_back(stream.at(content).prompt);
    if (i >= uint64_t(first) && i < uint64_t(first + count)) r.keep.push_back(size_t(i - lo));
  }
  return r;
}

// Runs the sampler in batches of r.batch (all at once when 0) and returns every image's output.
std::vector<synth::SampleOutput> run_batches(synth::StableDiffusion& sd, const Request& r, const torch::Tensor& noise) {
  std::vector<synth::SampleOutput> outs;
  const size_t n = r.prompts.size(), step = r.batch > 0 ? size_t(r.batch) : n;
  for (size_t b = 0; b < n; b += step) {
    const size_t e = std::min(n, b + step);
    const std::vector<std::string> prompts(r.prompts.begin() + long(b), r.prompts.begin() + long(e));
    outs.push_back(sd.sample(prompts, noise.slice(0, int64_t(b), int64_t(e)), r.options));
  }
  return outs;
}

void sample(const synth::cli::Args& args) {
  Request r = args.has("config") ? from_run(args) : from_flags(args);
  std::error_code ec;
  if (!std::filesystem::is_directory(r.model, ec)) throw synth::InputError("--model: '" + r.model + "' is not a directory");
  // "cuda" is this process's LOCAL_RANK GPU, as for generator.device (distributed/env.hpp).
  const torch::Device device = synth::resolve_device(r.device, "--device", synth::dist_env_from_process());
  if (r.dtype != "fp32" && r.dtype != "fp16") throw synth::InputError("--dtype must be fp32 or fp16, got '" + r.dtype + "'");
  synth::require_device(device, "--device", r.device);
  if (!std::isfinite(r.options.guidance)) throw synth::InputError("--guidance must be finite");

  synth::StableDiffusion sd(r.model, device, r.dtype == "fp16" ? torch::kFloat16 : torch::kFloat32);
  torch::Tensor noise;
  if (args.has("init-latents")) {
    const std::string path = args.get("init-latents");
    noise = synth::SafeTensorsFile::open(path).tensor("latents");
    if (noise.dim() != 4 || noise.size(0) != int64_t(r.prompts.size()))
      throw synth::InputError(path + ": tensor 'latents' must be N x C x h x w with N = " + std::to_string(r.prompts.size()) +
                              " (one per prompt)");
    const int64_t f = sd.upscale();
    r.options.height = args.get_int("height", noise.size(2) * f);
    r.options.width = args.get_int("width", noise.size(3) * f);
  } else {
    noise = sd.initial_noise(r.noise_keys, r.seed, r.options.width, r.options.height);
  }
  const auto outs = run_batches(sd, r, noise);
  std::vector<synth::ImageU8> images;
  std::vector<torch::Tensor> latents;
  for (const auto& o : outs) {
    images.insert(images.end(), o.images.begin(), o.images.end());
    latents.push_back(o.latents);
  }
  if (r.keep.empty())
    for (size_t i = 0; i < images.size(); ++i) r.keep.push_back(i);
  const std::string dir = args.get("out", "samples");
  std::filesystem::create_directories(dir, ec);
  if (ec) throw synth::InputError("--out: cannot create '" + dir + "': " + ec.message());
  auto idx = std::vector<int64_t>(r.keep.begin(), r.keep.end());
  if (args.has("out-latents"))
    synth::save_safetensors(args.get("out-latents"), {{"latents", torch::cat(latents).index_select(0, torch::tensor(idx))}});
  std::vector<synth::ImageU8> kept;
  for (const size_t k : r.keep) {
    const std::string png = dir + "/" + std::to_string(r.indices[k]) + ".png";
    synth::write_png(png, images[k]);
    kept.push_back(images[k]);
    std::printf("%llu\t%s\t%s\n", (unsigned long long)r.indices[k], png.c_str(), r.prompts[k].c_str());
  }
  synth::write_png(dir + "/contact_sheet.png", synth::contact_sheet(kept));
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
    if (args.has("model") || args.has("config")) {
      sample(args);
      return 0;
    }
    throw synth::InputError("nothing to do: give --tokenize, --list-prompts or --model (see --help)");
  });
}
