// Loading the components of a diffusers Stable Diffusion v1 directory: the one place that knows
// the file names and every difference of tensor names synthstream accepts, as stable-diffusion.cpp
// keeps its name conversion in one file. Module names mirror the diffusers/transformers keys, so
// the mapping is the identity (load_module_weights, io/safetensors.hpp: strict, missing /
// wrong-shape / unexpected tensors are InputErrors naming the file and key) except for:
//   text encoder  files saved without the "text_model." level (transformers >= 4.31 for
//                 CLIPTextModel), and the constant position_ids buffer older files carry (ignored);
//   VAE decoder   the encoder half (encoder.*, quant_conv.*) is ignored; checkpoints converted by
//                 diffusers < 0.14 name the mid-block attention query/key/value/proj_attn;
//   U-Net, whole autoencoder: the identity.
// Weights of any float dtype load into the float32 modules (fp16 files included).
#pragma once
#include <string>

#include "diffusion/unet.hpp"
#include "diffusion/vae.hpp"
#include "io/safetensors.hpp"
#include "text/clip_text_encoder.hpp"

namespace synth {

// The weight file of one component directory (e.g. <sd>/unet): the first that exists of
// diffusion_pytorch_model.safetensors, model.safetensors, and their .fp16 variants. Pickled
// .bin checkpoints are refused with an InputError naming the directory (convert them first).
std::string find_weights_file(const std::string& component_dir);

// find_weights_file + SafeTensorsFile::open.
SafeTensorsFile open_weights(const std::string& component_dir);

// <sd>/text_encoder (transformers CLIPTextModel: config.json + model.safetensors).
ClipTextEncoder load_text_encoder(const std::string& dir);
// <sd>/unet (diffusers UNet2DConditionModel), in eval mode.
UNet load_unet(const std::string& dir);
// <sd>/vae, decoder half (what sampling needs).
VaeDecoder load_vae_decoder(const std::string& dir);
// <sd>/vae, both halves (training, stream-sd-train's reloads, the reference probe).
AutoencoderKL load_autoencoder(const std::string& dir);

}  // namespace synth
