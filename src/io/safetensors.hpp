// Reader and writer for the safetensors format (Hugging Face): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {...}}, then the raw little-endian tensor bytes; offsets are relative to the end of the header.
// Files are memory-mapped read-only and validated completely at open, so every later access is in
// bounds: nothing is allocated from a size that has not been checked against the file.
//
// Also the strict module loader: parameters and buffers of a torch::nn::Module are matched to
// tensors by name (module names mirror the diffusers/transformers keys). It lives here, in the io
// stage, because both the text stage (CLIP) and the diffusion stage (U-Net, VAE) load weights and
// the text stage comes first; diffusion/weights.hpp re-exports it.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors_header.hpp"  // TensorInfo, the torch-free header parser

namespace torch::nn {
class Module;
}

namespace synth {

class SafeTensorsFile {
 public:
  // Maps and validates the file; throws InputError naming the file (and tensor) on any defect.
  static SafeTensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // InputError "<file>: no tensor '<name>'"
  // A fresh CPU tensor owning its memory, converted to `as` (F16/BF16 -> F32 is exact).
  torch::Tensor tensor(const std::string& name, torch::Dtype as = torch::kFloat32) const;
  // The tensor in its stored dtype.
  torch::Tensor tensor_raw(const std::string& name) const;
  // Copies the tensor into `dst` (same shape, any dtype/device; converted like tensor()). A CPU
  // contiguous destination of the stored dtype is filled straight from the mapping, so loading a
  // multi-GB checkpoint needs no second host copy.
  void read_into(const std::string& name, torch::Tensor& dst) const;
  const nlohmann::json& metadata() const { return metadata_; }  // __metadata__ or empty object

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<const Mapping> map_;
  const uint8_t* data_ = nullptr;  // start of the data section inside the mapping
  std::map<std::string, TensorInfo> infos_;
  nlohmann::json metadata_ = nlohmann::json::object();
};

// Writes the tensors (any device, contiguity, supported dtype) in the given order, atomically:
// a temporary file next to `path`, fsync, rename. Duplicate or empty names -> InputError.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A module's state_dict as PyTorch orders and names it: each module depth first, the root first,
// children in registration order, with its own parameters then its own buffers under dotted keys
// ("layer1.0.conv1.weight", "layer1.0.bn1.num_batches_tracked"). Undefined tensors (an absent
// bias) are left out, as PyTorch leaves out None. The tensors are the module's own (not copies).
std::vector<std::pair<std::string, torch::Tensor>> module_state_dict(const torch::nn::Module& m);

// Safetensors dtype string <-> torch dtype; unknown -> InputError naming `context`.
torch::Dtype safetensors_dtype(const std::string& dtype, const std::string& context);
std::string safetensors_dtype_name(torch::Dtype dtype, const std::string& context);

// How module names meet file keys in load_module_weights. File key of parameter `p` is
// prefix + rename(p) (rename defaults to identity). Tensors whose key starts with one of
// `ignore_prefixes` are allowed to be left unused (e.g. a VAE's encoder when only decoding).
struct WeightLoadOptions {
  std::string prefix;
  std::vector<std::string> ignore_prefixes;
  std::function<std::string(const std::string&)> rename;
};

// Strict loading: every parameter and buffer of `m` must be in the file with the same shape
// ("<file>: tensor '<key>' has shape [..] but the model expects [..]", "<file>: missing tensor
// '<key>'"), and every tensor in the file must be used or ignored ("<file>: unexpected tensor
// '<key>'"). Values are converted to each parameter's dtype and copied to its device. Nothing is
// modified unless the whole file matches.
void load_module_weights(torch::nn::Module& m, const SafeTensorsFile& f, const std::string& prefix = "");
void load_module_weights(torch::nn::Module& m, const SafeTensorsFile& f, const WeightLoadOptions& options);

}  // namespace synth
