// reference_probe: the C++ half of the live reference suite (tests/reference, pytest). It runs our
// library code on inputs the Python side prepared and writes what it computed, so the tests can
// compare with diffusers / transformers / torchvision built at test time (the llm.c test_gpt2
// pattern). One process per call, one subcommand each:
//
//   models MODEL_DIR IN.safetensors OUT.safetensors
//       a diffusers SD v1 directory through our loaders; runs what IN asks for:
//         text.input_ids (int64 B x L)                          -> text.last_hidden_state
//         unet.sample, unet.timestep, unet.encoder_hidden_states -> unet.out
//         vae.latent (scaled latents, as the sampler has them)   -> vae.decoded (before clamping)
//         vae.image ([-1, 1] images)  -> vae.posterior_mean, vae.posterior_logvar (AutoencoderKL encoder)
//       Components are loaded only when asked for (MODEL_DIR/text_encoder, /unet, /vae) and freed
//       after use, so the full-size U-Net is never in memory twice.
//   tokenize TOKENIZER_DIR
//       stdin: one JSON array of strings; stdout: one line of 77 CLIP token ids per string (as
//       `stream-sample --tokenize`, without a process per text).
//   dino --config CFG [--set k=v]... --first I --count N --out DIR IMAGE
//       the DINO crops of stream indices [I, I+N) of IMAGE as stream-augment makes them (same
//       parameters, same CPU reference): DIR/crops.safetensors (global.<i>, local.<i>) and
//       DIR/params.json ({"<i>": [crop, ...]}, each crop in stream-augment's params.json format).
//   eval-preprocess [--config CFG] --out FILE IMAGE...
//       the evaluation preprocessing (eval.resize, eval.crop, augment.mean/std; defaults without
//       --config) of each IMAGE decoded by our codec: image.<k> (3 x crop x crop float32) and
//       decoded.<k> (uint8 H x W x 3, the decoder's pixels).
//   checkpoint --arch A --width W --classes N --out DIR
//       a training checkpoint of a ResNet with seeded random weights and non-trivial batch-norm
//       statistics and affine parameters (as tests/app/test_eval_cli.cpp makes), for stream-export.
//
// Exit status as the apps: 0 done, 2 bad input (one line "reference_probe: error: ..."), 1 other.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "app/cli.hpp"
#include "augment/dino_cpu.hpp"
#include "augment/dino_params.hpp"
#include "augment/simple_augment.hpp"
#include "config/load.hpp"
#include "diffusion/unet.hpp"
#include "diffusion/vae.hpp"
#include "io/image.hpp"
#include "io/safetensors.hpp"
#include "text/clip_text_encoder.hpp"
#include "text/tokenizer.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"
#include "diffusion/weights.hpp"

namespace {

using Named = std::vector<std::pair<std::string, torch::Tensor>>;

int models(const std::vector<std::string>& pos) {
  if (pos.size() != 3) throw synth::InputError("usage: reference_probe models MODEL_DIR IN.safetensors OUT.safetensors");
  const std::string& dir = pos[0];
  const synth::SafeTensorsFile in = synth::SafeTensorsFile::open(pos[1]);
  torch::NoGradGuard no_grad;
  Named out;
  if (in.contains("text.input_ids")) {
    const synth::ClipTextEncoder encoder = synth::load_text_encoder(dir + "/text_encoder");
    out.emplace_back("text.last_hidden_state", encoder.forward(in.tensor_raw("text.input_ids")).contiguous());
  }
  if (in.contains("unet.sample")) {
    synth::UNet unet = synth::load_unet(dir + "/unet");
    unet->eval();
    out.emplace_back("unet.out", unet->forward(in.tensor("unet.sample"), in.tensor_raw("unet.timestep"),
                                               in.tensor("unet.encoder_hidden_states"))
                                     .contiguous());
  }
  if (in.contains("vae.latent")) {
    const synth::VaeDecoder vae = synth::load_vae_decoder(dir + "/vae");
    out.emplace_back("vae.decoded", vae.decode(in.tensor("vae.latent")).contiguous());
  }
  if (in.contains("vae.image")) {  // the encoder half (stream-sd-train's), with the whole autoencoder
    torch::NoGradGuard no_grad;
    synth::AutoencoderKL vae = synth::load_autoencoder(dir + "/vae");
    const auto post = vae.encode(in.tensor("vae.image"));
    out.emplace_back("vae.posterior_mean", post.mean.contiguous());
    out.emplace_back("vae.posterior_logvar", post.logvar.contiguous());
  }
  if (out.empty()) throw synth::InputError(pos[1] + ": none of text.input_ids, unet.sample, vae.latent, vae.image");
  synth::save_safetensors(pos[2], out);
  return 0;
}

int tokenize(const std::vector<std::string>& pos) {
  if (pos.size() != 1) throw synth::InputError("usage: reference_probe tokenize TOKENIZER_DIR < texts.json");
  const synth::ClipTokenizer tokenizer(pos[0]);
  const std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  nlohmann::json texts;
  try {
    texts = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw synth::InputError(std::string("stdin: not JSON: ") + e.what());
  }
  if (!texts.is_array()) throw synth::InputError("stdin: expected a JSON array of strings");
  std::string out;
  for (const auto& t : texts) {
    if (!t.is_string()) throw synth::InputError("stdin: expected a JSON array of strings");
    std::string line;
    for (const int64_t id : tokenizer.encode(t.get<std::string>())) line += (line.empty() ? "" : " ") + std::to_string(id);
    out += line + "\n";
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

int dino(const synth::cli::Args& args) {
  if (args.positional().size() != 1) throw synth::InputError("dino: expected one IMAGE");
  for (const char* key : {"config", "first", "count", "out"})
    if (!args.has(key)) throw synth::InputError(std::string("dino: missing --") + key);
  const synth::Config cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
  const synth::DinoConfig& dino = cfg.augment.dino;
  const synth::ImageU8 image = synth::decode_image_file(args.positional()[0]);
  const long long first = args.get_int("first", 0), count = args.get_int("count", 1);
  if (first < 0 || count < 1) throw synth::InputError("dino: --first must be >= 0 and --count >= 1");
  Named tensors;
  nlohmann::json params = nlohmann::json::object();
  for (long long i = first; i < first + count; ++i) {
    const auto p = synth::draw_dino_params(dino, cfg.run.seed, uint64_t(i), image.height, image.width);
    const synth::DinoBatch b = synth::dino_augment_cpu_with(dino, cfg.augment.mean, cfg.augment.std, {&image}, {p});
    tensors.emplace_back("global." + std::to_string(i), b.global.contiguous());
    if (b.local.defined() && b.local.numel() > 0) tensors.emplace_back("local." + std::to_string(i), b.local.contiguous());
    nlohmann::json crops = nlohmann::json::array();
    for (const auto& c : p) crops.push_back(synth::dino_params_json(c));
    params[std::to_string(i)] = crops;
  }
  const std::string dir = args.get("out");
  std::filesystem::create_directories(dir);
  synth::save_safetensors(dir + "/crops.safetensors", tensors);
  std::ofstream(dir + "/params.json") << params.dump(1) << "\n";
  return 0;
}

int eval_preprocess(const synth::cli::Args& args) {
  if (!args.has("out") || args.positional().empty()) throw synth::InputError("eval-preprocess: --out FILE IMAGE...");
  synth::Config cfg;
  if (args.has("config")) cfg = synth::load_config(args.get("config"), args.all("set"), synth::kNoInputs);
  Named tensors;
  for (size_t k = 0; k < args.positional().size(); ++k) {
    const synth::ImageU8 image = synth::decode_image_file(args.positional()[k]);
    synth::ImageView view;
    view.pixels = image.pixels.data();
    view.height = image.height;
    view.width = image.width;
    view.channels = image.channels;
    tensors.emplace_back("image." + std::to_string(k),
                         synth::eval_preprocess(view, cfg.eval.resize, cfg.eval.crop, cfg.augment.mean, cfg.augment.std));
    tensors.emplace_back("decoded." + std::to_string(k),
                         torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, image.channels},
                                          torch::kUInt8)
                             .clone());
  }
  synth::save_safetensors(args.get("out"), tensors,
                          {{"resize", std::to_string(cfg.eval.resize)}, {"crop", std::to_string(cfg.eval.crop)}});
  return 0;
}

int checkpoint(const synth::cli::Args& args) {
  for (const char* key : {"arch", "classes", "out"})
    if (!args.has(key)) throw synth::InputError(std::string("checkpoint: missing --") + key);
  const synth::ResNetSpec spec{args.get("arch"), args.get_double("width", 1.0), int(args.get_int("classes", 1000))};
  torch::manual_seed(5);
  synth::ResNet model(spec);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : model->named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.2, 0.2);
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
      if (b.key().find("num_batches_tracked") != std::string::npos) b.value().fill_(3);
    }
    for (auto& p : model->named_parameters()) {
      if (p.key().find("bn") == std::string::npos && p.key().find("downsample.1") == std::string::npos) continue;
      if (p.key().find(".weight") != std::string::npos) p.value().uniform_(0.5, 1.5);
      if (p.key().find(".bias") != std::string::npos) p.value().uniform_(-0.2, 0.2);
    }
  }
  model->eval();
  auto opt = synth::make_sgd(*model, synth::OptimConfig{});
  synth::TrainState st;
  st.arch = spec.arch;
  st.width = spec.width;
  st.num_classes = spec.num_classes;
  st.images_seen = 1234;
  st.step = 10;
  std::printf("%s\n", synth::save_checkpoint(args.get("out"), st, *model, *opt, 1).string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return synth::cli::guarded_main("reference_probe", [&] {
    if (argc < 2) throw synth::InputError("usage: reference_probe models|tokenize|dino|eval-preprocess|checkpoint ...");
    const std::string cmd = argv[1];
    const synth::cli::Args args(argc - 1, argv + 1, {},
                                {"config", "set", "first", "count", "out", "arch", "width", "classes"});
    if (cmd == "models") return models(args.positional());
    if (cmd == "tokenize") return tokenize(args.positional());
    if (cmd == "dino") return dino(args);
    if (cmd == "eval-preprocess") return eval_preprocess(args);
    if (cmd == "checkpoint") return checkpoint(args);
    throw synth::InputError("unknown subcommand '" + cmd + "'");
  });
}
