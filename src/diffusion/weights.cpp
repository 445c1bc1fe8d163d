#include "diffusion/weights.hpp"

#include <sys/stat.h>

#include <utility>

#include "core/error.hpp"
#include "diffusion/model_config.hpp"

namespace synth {

namespace {
bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
}  // namespace

std::string find_weights_file(const std::string& component_dir) {
  for (const char* name : {"diffusion_pytorch_model.safetensors", "model.safetensors",
                           "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors"}) {
    const std::string path = component_dir + "/" + name;
    if (is_file(path)) return path;
  }
  // Pickle files can run arbitrary code when loaded; synthstream reads safetensors only.
  for (const char* name : {"diffusion_pytorch_model.bin", "pytorch_model.bin"})
    if (is_file(component_dir + "/" + name))
      throw InputError(component_dir + ": only a pickled " + name +
                       " is present; convert it to .safetensors (synthstream never unpickles)");
  throw InputError(component_dir + ": no weight file (diffusion_pytorch_model.safetensors or model.safetensors)");
}

SafeTensorsFile open_weights(const std::string& component_dir) {
  return SafeTensorsFile::open(find_weights_file(component_dir));
}

ClipTextEncoder load_text_encoder(const std::string& dir) {
  ClipTextEncoder enc(load_text_encoder_config(dir + "/config.json"));
  const auto file = open_weights(dir);
  WeightLoadOptions options;
  // transformers < 4.31 saved the constant position_ids buffer; it carries no weights.
  options.ignore_prefixes = {"text_model.embeddings.position_ids", "embeddings.position_ids"};
  // Newer transformers save CLIPTextModel without the "text_model." level.
  if (!file.contains("text_model.embeddings.token_embedding.weight") && file.contains("embeddings.token_embedding.weight"))
    options.rename = [](const std::string& name) {
      const std::string level = "text_model.";
      return starts_with(name, level) ? name.substr(level.size()) : name;
    };
  load_module_weights(enc.module(), file, options);
  return enc;
}

UNet load_unet(const std::string& dir) {
  UNet unet(load_unet_config(dir + "/config.json"));
  load_module_weights(*unet, open_weights(dir));
  unet->eval();
  return unet;
}

VaeDecoder load_vae_decoder(const std::string& dir) {
  VaeDecoder vae(load_vae_config(dir + "/config.json"));
  const auto file = open_weights(dir);
  WeightLoadOptions options;
  // Decoding only: the encoder half of the autoencoder is present in the file but unused.
  options.ignore_prefixes = {"encoder.", "quant_conv."};
  if (file.contains("decoder.mid_block.attentions.0.query.weight")) {
    options.rename = [](const std::string& name) {
      const std::string base = "decoder.mid_block.attentions.0.";
      if (!starts_with(name, base)) return name;
      const std::string rest = name.substr(base.size());
      for (const auto& [now, old] : {std::pair<std::string, std::string>{"to_q.", "query."}, {"to_k.", "key."},
                                     {"to_v.", "value."}, {"to_out.0.", "proj_attn."}})
        if (starts_with(rest, now)) return base + old + rest.substr(now.size());
      return name;
    };
  }
  load_module_weights(vae.module(), file, options);
  return vae;
}

AutoencoderKL load_autoencoder(const std::string& dir) {
  AutoencoderKL vae(load_vae_config(dir + "/config.json"));
  load_module_weights(vae.module(), open_weights(dir));
  return vae;
}

}  // namespace synth
