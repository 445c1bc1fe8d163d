// Weight files of a diffusers model directory. The mapping from module parameters to safetensors
// keys is the identity (module names mirror the diffusers/transformers keys), implemented once by
// load_module_weights in io/safetensors.hpp (the text stage, which comes before this one, needs it
// too) and re-exported here:
//   load_module_weights(module, file, prefix)   strict: missing / wrong-shape / unexpected -> InputError
//   load_module_weights(module, file, WeightLoadOptions{prefix, ignore_prefixes, rename})
#pragma once
#include <string>

#include "io/safetensors.hpp"

namespace synth {

// The weight file of one component directory (e.g. <sd>/unet): the first that exists of
// diffusion_pytorch_model.safetensors, model.safetensors, and their .fp16 variants. Pickled
// .bin checkpoints are refused with an InputError naming the directory (convert them first).
std::string find_weights_file(const std::string& component_dir);

// find_weights_file + SafeTensorsFile::open.
SafeTensorsFile open_weights(const std::string& component_dir);

}  // namespace synth
