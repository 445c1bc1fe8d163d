#include "diffusion/weights.hpp"

#include <sys/stat.h>

#include "core/error.hpp"

namespace synth {

namespace {
bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
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

}  // namespace synth
