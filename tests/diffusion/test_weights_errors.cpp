// Strict weight loading and config validation: every defect is an InputError that names the file
// and the offending tensor or key. Bad inputs are derived from tests/fixtures/tiny-sd in a temp dir.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/error.hpp"
#include "diffusion/model_config.hpp"
#include "diffusion/vae.hpp"
#include "diffusion/weights.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;

namespace {
const std::string kSd = std::string(SYNTH_TEST_DATA) + "/tiny-sd";

using TempDir = synth::test::ScratchDir;

template <class F>
void expect_input_error(F&& f, const std::vector<std::string>& needles) {
  bool thrown = false;
  try {
    f();
  } catch (const synth::InputError& e) {
    thrown = true;
    const std::string msg = e.what();
    for (const auto& n : needles) {
      INFO("message: " << msg << " | expected to contain: " << n);
      CHECK(msg.find(n) != std::string::npos);
    }
  }
  CHECK_MESSAGE(thrown, "expected synth::InputError");
}

using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

Tensors vae_tensors() {
  const auto f = synth::SafeTensorsFile::open(kSd + "/vae/diffusion_pytorch_model.safetensors");
  Tensors out;
  for (const auto& n : f.names()) out.emplace_back(n, f.tensor_raw(n));
  return out;
}

// A VAE directory with the tiny-sd config and the given tensors.
std::string make_vae_dir(const TempDir& tmp, const Tensors& tensors) {
  fs::copy_file(kSd + "/vae/config.json", tmp.path / "config.json", fs::copy_options::overwrite_existing);
  synth::save_safetensors((tmp.path / "diffusion_pytorch_model.safetensors").string(), tensors);
  return tmp.str();
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}
void write_json(const fs::path& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(1); }

// A copy of tiny-sd's configs (weights are not needed to read configs).
void copy_configs(const TempDir& tmp) {
  for (const char* p : {"model_index.json", "text_encoder/config.json", "unet/config.json", "vae/config.json",
                        "scheduler/scheduler_config.json"}) {
    fs::create_directories((tmp.path / p).parent_path());
    fs::copy_file(kSd + "/" + p, tmp.path / p, fs::copy_options::overwrite_existing);
  }
}
}  // namespace

TEST_CASE("VAE weights: the unmodified file loads, ignoring only the encoder half") {
  TempDir tmp("ok");
  auto dir = make_vae_dir(tmp, vae_tensors());
  CHECK_NOTHROW(synth::load_vae_decoder(dir));
}

TEST_CASE("VAE weights: wrong shape names file, tensor and both shapes") {
  TempDir tmp("shape");
  auto t = vae_tensors();
  for (auto& [n, v] : t)
    if (n == "decoder.conv_in.weight") v = torch::zeros({64, 4, 1, 1});
  auto dir = make_vae_dir(tmp, t);
  expect_input_error([&] { synth::load_vae_decoder(dir); },
                     {"diffusion_pytorch_model.safetensors", "tensor 'decoder.conv_in.weight'", "[64, 4, 1, 1]",
                      "expects [64, 4, 3, 3]"});
}

TEST_CASE("VAE weights: a missing tensor is named") {
  TempDir tmp("missing");
  auto t = vae_tensors();
  t.erase(std::remove_if(t.begin(), t.end(), [](auto& p) { return p.first == "decoder.up_blocks.1.resnets.0.conv_shortcut.bias"; }),
          t.end());
  auto dir = make_vae_dir(tmp, t);
  expect_input_error([&] { synth::load_vae_decoder(dir); },
                     {"diffusion_pytorch_model.safetensors", "missing tensor 'decoder.up_blocks.1.resnets.0.conv_shortcut.bias'"});
}

TEST_CASE("VAE weights: an unexpected tensor is named, even next to the ignored encoder") {
  TempDir tmp("unexpected");
  auto t = vae_tensors();
  t.emplace_back("decoder.up_blocks.2.upsamplers.0.conv.weight", torch::zeros({32, 32, 3, 3}));
  auto dir = make_vae_dir(tmp, t);
  expect_input_error([&] { synth::load_vae_decoder(dir); },
                     {"diffusion_pytorch_model.safetensors", "unexpected tensor 'decoder.up_blocks.2.upsamplers.0.conv.weight'"});
}

TEST_CASE("VAE weights with the pre-0.14 attention names (query/key/value/proj_attn) decode identically") {
  TempDir tmp("oldnames");
  auto t = vae_tensors();
  const std::string base = "decoder.mid_block.attentions.0.";
  for (auto& [n, v] : t) {
    for (auto [now, old] : {std::pair<std::string, std::string>{"to_q.", "query."}, {"to_k.", "key."}, {"to_v.", "value."},
                            {"to_out.0.", "proj_attn."}})
      if (n.rfind(base + now, 0) == 0) n = base + old + n.substr(base.size() + now.size());
  }
  auto dir = make_vae_dir(tmp, t);
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  const auto out = synth::load_vae_decoder(dir).decode(vectors.tensor("vae.latent"));
  const auto ref = vectors.tensor("vae.decoded");
  CHECK(((out - ref).norm() / ref.norm()).item<double>() < 1e-4);
}

TEST_CASE("fp16 weights load into an fp32 model exactly") {
  TempDir tmp("fp16");
  auto t = vae_tensors();
  for (auto& [n, v] : t) v = v.to(torch::kFloat16);
  auto dir = make_vae_dir(tmp, t);
  auto vae = synth::load_vae_decoder(dir);
  for (const auto& p : vae.module().named_parameters()) {
    for (const auto& [n, v] : t)
      if (n == p.key()) CHECK(torch::equal(p.value(), v.to(torch::kFloat32)));
  }
}

TEST_CASE("load_module_weights: prefix, strictness and no partial loads") {
  TempDir tmp("module");
  torch::nn::Sequential net(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
  const auto path = (tmp.path / "m.safetensors").string();
  synth::save_safetensors(path, {{"model.0.weight", torch::ones({2, 3})},
                                 {"model.0.bias", torch::full({2}, 2.0)},
                                 {"model.1.weight", torch::full({2}, 3.0)},
                                 {"model.1.bias", torch::full({2}, 4.0)},
                                 {"model.1.running_mean", torch::full({2}, 5.0)},
                                 {"model.1.running_var", torch::full({2}, 6.0)},
                                 {"model.1.num_batches_tracked", torch::tensor(int64_t(7))}});
  const auto f = synth::SafeTensorsFile::open(path);
  synth::load_module_weights(*net, f, "model.");
  CHECK(torch::equal(net[0]->as<torch::nn::LinearImpl>()->weight, torch::ones({2, 3})));
  CHECK(net[1]->as<torch::nn::BatchNorm1dImpl>()->running_var.equal(torch::full({2}, 6.0)));
  CHECK(net[1]->as<torch::nn::BatchNorm1dImpl>()->num_batches_tracked.item<int64_t>() == 7);

  // Without the prefix nothing matches: the first parameter is reported missing and the module
  // keeps its values.
  torch::nn::Sequential fresh(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
  const auto before = fresh[0]->as<torch::nn::LinearImpl>()->weight.clone();
  expect_input_error([&] { synth::load_module_weights(*fresh, f); }, {path, "missing tensor '0.weight'"});
  CHECK(torch::equal(fresh[0]->as<torch::nn::LinearImpl>()->weight, before));

  // A smaller module leaves tensors unused: unexpected unless ignored.
  torch::nn::Sequential just_linear(torch::nn::Linear(3, 2));
  expect_input_error([&] { synth::load_module_weights(*just_linear, f, "model."); },
                     {path, "unexpected tensor 'model.1."});
  synth::WeightLoadOptions opts;
  opts.prefix = "model.";
  opts.ignore_prefixes = {"model.1."};
  CHECK_NOTHROW(synth::load_module_weights(*just_linear, f, opts));
}

TEST_CASE("config errors name the file and the key") {
  TempDir tmp("config");
  copy_configs(tmp);
  const fs::path unet = tmp.path / "unet/config.json";
  const fs::path vae = tmp.path / "vae/config.json";
  const fs::path te = tmp.path / "text_encoder/config.json";
  const fs::path index = tmp.path / "model_index.json";
  CHECK_NOTHROW(synth::load_model_dir(tmp.str()));

  SUBCASE("wrong type") {
    auto j = read_json(unet.string());
    j["layers_per_block"] = "2";
    write_json(unet, j);
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"unet/config.json", "'layers_per_block'", "integer"});
  }
  SUBCASE("missing key") {
    auto j = read_json(vae.string());
    j.erase("block_out_channels");
    write_json(vae, j);
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"vae/config.json", "missing key 'block_out_channels'"});
  }
  SUBCASE("list of the wrong length") {
    auto j = read_json(unet.string());
    j["attention_head_dim"] = {8, 8};
    write_json(unet, j);
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"unet/config.json", "'attention_head_dim'"});
  }
  SUBCASE("text encoder key of the wrong type") {
    auto j = read_json(te.string());
    j["hidden_size"] = 32.5;
    write_json(te, j);
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"text_encoder/config.json", "'hidden_size'"});
  }
  SUBCASE("text encoder missing key") {
    auto j = read_json(te.string());
    j.erase("num_attention_heads");
    write_json(te, j);
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"text_encoder/config.json", "'num_attention_heads'"});
  }
  SUBCASE("unsupported component class") {
    auto j = read_json(index.string());
    j["vae"] = {"diffusers", "AutoencoderTiny"};
    write_json(index, j);
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"model_index.json", "'vae'", "AutoencoderTiny"});
  }
  SUBCASE("mismatched components") {
    auto j = read_json(unet.string());
    j["cross_attention_dim"] = 768;
    write_json(unet, j);
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"unet/config.json", "'cross_attention_dim'"});
  }
  SUBCASE("missing file") {
    fs::remove(tmp.path / "scheduler/scheduler_config.json");
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"scheduler/scheduler_config.json"});
  }
  SUBCASE("not JSON") {
    std::ofstream(vae) << "{\"in_channels\": 3,";
    expect_input_error([&] { synth::load_model_dir(tmp.str()); }, {"vae/config.json", "JSON"});
  }
}

TEST_CASE("a component directory without safetensors weights is refused") {
  TempDir tmp("noweights");
  expect_input_error([&] { synth::find_weights_file(tmp.str()); }, {tmp.str(), "no weight file"});
  std::ofstream(tmp.path / "diffusion_pytorch_model.bin") << "pickle";
  expect_input_error([&] { synth::find_weights_file(tmp.str()); }, {tmp.str(), "never unpickles"});
}
