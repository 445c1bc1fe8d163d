#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

#include "core/error.hpp"

namespace synth {

namespace {

static_assert(sizeof(void*) == 8, "safetensors offsets are 64-bit");

bool host_is_little_endian() {
  const uint16_t probe = 1;
  uint8_t first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

torch::Dtype safetensors_dtype(const std::string& dtype, const std::string& context) {
  if (dtype == "F64") return torch::kFloat64;
  if (dtype == "F32") return torch::kFloat32;
  if (dtype == "F16") return torch::kFloat16;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "I64") return torch::kInt64;
  if (dtype == "I32") return torch::kInt32;
  if (dtype == "I16") return torch::kInt16;
  if (dtype == "I8") return torch::kInt8;
  if (dtype == "U8") return torch::kUInt8;
  if (dtype == "BOOL") return torch::kBool;
  throw InputError(with_context(context, "unsupported dtype '" + dtype + "'"));
}

std::string safetensors_dtype_name(torch::Dtype dtype, const std::string& context) {
  switch (dtype) {
    case torch::kFloat64: return "F64";
    case torch::kFloat32: return "F32";
    case torch::kFloat16: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    case torch::kInt16: return "I16";
    case torch::kInt8: return "I8";
    case torch::kUInt8: return "U8";
    case torch::kBool: return "BOOL";
    default: throw InputError(with_context(context, "dtype cannot be stored in safetensors"));
  }
}

// Owns the read-only mapping; shared by copies of a SafeTensorsFile.
struct SafeTensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (addr && size) munmap(addr, size);
  }
};

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  if (!host_is_little_endian()) throw Error(path + ": safetensors needs a little-endian host");
  SafeTensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path + ": cannot open safetensors file: " + errno_text());
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path + ": not a regular file");
  }
  const uint64_t file_size = uint64_t(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw InputError(path + ": truncated safetensors file (" + std::to_string(file_size) +
                     " bytes, the header length alone needs 8)");
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->addr = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping->addr == MAP_FAILED) {
    mapping->addr = nullptr;
    throw InputError(path + ": cannot map file: " + errno_text());
  }
  mapping->size = file_size;
  const auto* bytes = static_cast<const uint8_t*>(mapping->addr);

  SafeTensorsHeader header = parse_safetensors_header(bytes, file_size, path);
  f.infos_ = std::move(header.infos);
  f.metadata_ = std::move(header.metadata);
  f.data_ = bytes + header.data_offset;
  f.map_ = std::move(mapping);
  return f;
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(infos_.size());
  for (const auto& [name, info] : infos_) out.push_back(name);
  return out;
}

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) throw InputError(path_ + ": no tensor '" + name + "'");
  return it->second;
}

torch::Tensor SafeTensorsFile::tensor_raw(const std::string& name) const {
  const TensorInfo& ti = info(name);
  // Copy into a fresh, aligned tensor: the mapped bytes need not be aligned for the dtype, and the
  // result must outlive the mapping.
  auto out = torch::empty(ti.shape, torch::TensorOptions().dtype(safetensors_dtype(ti.dtype, path_ + ": tensor '" + name + "'")));
  if (ti.end > ti.begin) std::memcpy(out.data_ptr(), data_ + ti.begin, ti.end - ti.begin);
  return out;
}

torch::Tensor SafeTensorsFile::tensor(const std::string& name, torch::Dtype as) const {
  auto raw = tensor_raw(name);
  return raw.scalar_type() == as ? raw : raw.to(as);
}

void SafeTensorsFile::read_into(const std::string& name, torch::Tensor& dst) const {
  const TensorInfo& ti = info(name);
  if (ti.shape != dst.sizes().vec())
    throw InputError(path_ + ": tensor '" + name + "' has shape " + shape_string(ti.shape) + " but the destination has " +
                     shape_string(dst.sizes().vec()));
  const auto stored = safetensors_dtype(ti.dtype, path_ + ": tensor '" + name + "'");
  torch::NoGradGuard no_grad;
  if (dst.device().is_cpu() && dst.is_contiguous() && dst.scalar_type() == stored) {
    if (ti.end > ti.begin) std::memcpy(dst.data_ptr(), data_ + ti.begin, ti.end - ti.begin);
    return;
  }
  dst.copy_(tensor_raw(name));
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> payload;
  payload.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const std::string ctx = path + ": tensor '" + name + "'";
    if (name.empty() || name == "__metadata__") throw InputError(ctx + ": invalid tensor name");
    if (header.contains(name)) throw InputError(ctx + ": duplicate tensor name");
    if (!t.defined()) throw InputError(ctx + ": undefined tensor");
    const std::string dtype = safetensors_dtype_name(t.scalar_type(), ctx);
    auto host = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = uint64_t(host.numel()) * uint64_t(host.element_size());
    header[name] = {{"dtype", dtype}, {"shape", host.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    payload.push_back(std::move(host));
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (the format allows trailing blanks).
  text.append((8 - text.size() % 8) % 8, ' ');

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(tmp + ": cannot create: " + errno_text());
  auto write_all = [&](const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd, c, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        const std::string why = errno_text();
        ::close(fd);
        ::unlink(tmp.c_str());
        throw Error(tmp + ": write failed: " + why);
      }
      c += w;
      n -= size_t(w);
    }
  };
  uint8_t len_bytes[8];
  const uint64_t header_len = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = uint8_t(header_len >> (8 * i));
  write_all(len_bytes, 8);
  write_all(text.data(), text.size());
  for (const auto& t : payload) write_all(t.data_ptr(), size_t(t.numel()) * t.element_size());
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw Error(tmp + ": fsync/close failed: " + why);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw Error(path + ": rename from temporary file failed: " + why);
  }
}

std::vector<std::pair<std::string, torch::Tensor>> module_state_dict(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const auto own = [&](const std::string& prefix, const torch::nn::Module& module) {
    for (const auto& p : module.named_parameters(/*recurse=*/false))
      if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : module.named_buffers(/*recurse=*/false))
      if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
  };
  own("", m);
  // named_modules without the root needs no shared_ptr to it, so any module works.
  for (const auto& child : m.named_modules(/*name_prefix=*/"", /*include_self=*/false)) own(child.key() + ".", *child.value());
  return out;
}

void load_module_weights(torch::nn::Module& m, const SafeTensorsFile& f, const std::string& prefix) {
  WeightLoadOptions options;
  options.prefix = prefix;
  load_module_weights(m, f, options);
}

void load_module_weights(torch::nn::Module& m, const SafeTensorsFile& f, const WeightLoadOptions& options) {
  struct Target {
    std::string key;
    torch::Tensor slot;
  };
  std::vector<Target> targets;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    if (!t.defined()) return;
    const std::string local = options.rename ? options.rename(name) : name;
    targets.push_back({options.prefix + local, t});
  };
  for (const auto& item : m.named_parameters(/*recurse=*/true)) add(item.key(), item.value());
  for (const auto& item : m.named_buffers(/*recurse=*/true)) add(item.key(), item.value());

  // Validate everything before touching the module, so a bad file leaves it unchanged.
  std::set<std::string> used;
  for (const auto& t : targets) {
    if (!f.contains(t.key)) throw InputError(f.path() + ": missing tensor '" + t.key + "'");
    const auto& info = f.info(t.key);
    if (info.shape != t.slot.sizes().vec())
      throw InputError(f.path() + ": tensor '" + t.key + "' has shape " + shape_string(info.shape) +
                       " but the model expects " + shape_string(t.slot.sizes().vec()));
    safetensors_dtype(info.dtype, f.path() + ": tensor '" + t.key + "'");
    used.insert(t.key);
  }
  for (const auto& name : f.names()) {
    if (used.count(name)) continue;
    const bool ignored = std::any_of(options.ignore_prefixes.begin(), options.ignore_prefixes.end(),
                                     [&](const std::string& p) { return name.compare(0, p.size(), p) == 0; });
    if (!ignored) throw InputError(f.path() + ": unexpected tensor '" + name + "'");
  }

  for (auto& t : targets) f.read_into(t.key, t.slot);
}

}  // namespace synth
