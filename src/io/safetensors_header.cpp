#include "io/safetensors_header.hpp"

#include <algorithm>
#include <climits>

#include "core/error.hpp"

namespace synth {

namespace {

// A header bigger than this is not a weight file but an attack or a corruption (the real SD v1.4
// U-Net header is ~100 kB); the bound keeps the JSON parser from allocating gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

}  // namespace

SafeTensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t file_size, const std::string& path) {
  if (file_size < 8)
    throw InputError(path + ": truncated safetensors file (" + std::to_string(file_size) +
                     " bytes, the header length alone needs 8)");
  SafeTensorsHeader f;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes)
    throw InputError(path + ": safetensors header length " + std::to_string(header_len) +
                     " is absurd (limit " + std::to_string(kMaxHeaderBytes) + " bytes)");
  if (header_len > file_size - 8)
    throw InputError(path + ": safetensors header length " + std::to_string(header_len) +
                     " goes beyond the end of the file (" + std::to_string(file_size) + " bytes)");
  const uint64_t data_size = file_size - 8 - header_len;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw InputError(path + ": safetensors header is not a JSON object");

  std::vector<const TensorInfo*> by_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw InputError(path + ": __metadata__ is not a JSON object");
      f.metadata = v;
      continue;
    }
    const std::string ctx = path + ": tensor '" + name + "'";
    if (!v.is_object()) throw InputError(ctx + ": entry is not a JSON object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw InputError(ctx + ": missing or non-string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) throw InputError(ctx + ": missing or non-array 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw InputError(ctx + ": 'data_offsets' must be an array [begin, end]");
    TensorInfo info;
    info.name = name;
    info.dtype = v["dtype"].get<std::string>();
    const int64_t elem = dtype_bytes(info.dtype);
    if (elem == 0) throw InputError(ctx + ": unknown dtype '" + info.dtype + "'");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw InputError(ctx + ": shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel))
        throw InputError(ctx + ": shape " + v["shape"].dump() + " overflows");
      info.shape.push_back(int64_t(dim));
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(elem), &nbytes))
      throw InputError(ctx + ": shape " + shape_string(info.shape) + " overflows");
    const auto& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw InputError(ctx + ": data_offsets must be non-negative integers");
    info.begin = off[0].get<uint64_t>();
    info.end = off[1].get<uint64_t>();
    if (info.end < info.begin)
      throw InputError(ctx + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                       "] end before they begin");
    if (info.end - info.begin != nbytes)
      throw InputError(ctx + ": " + info.dtype + " " + shape_string(info.shape) + " needs " + std::to_string(nbytes) +
                       " bytes but data_offsets span " + std::to_string(info.end - info.begin));
    if (info.end > data_size)
      throw InputError(ctx + ": data_offsets end " + std::to_string(info.end) + " is beyond the data section (" +
                       std::to_string(data_size) + " bytes)");
    auto [pos, inserted] = f.infos.emplace(name, std::move(info));
    if (!inserted) throw InputError(ctx + ": duplicate tensor name");
    by_offset.push_back(&pos->second);
  }

  // Two tensors sharing bytes would alias after loading; the format forbids it.
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo* prev = by_offset[i - 1];
    const TensorInfo* cur = by_offset[i];
    if (cur->begin < prev->end)
      throw InputError(path + ": tensors '" + prev->name + "' and '" + cur->name + "' have overlapping data_offsets");
  }

  f.data_offset = 8 + header_len;
  return f;
}

}  // namespace synth
