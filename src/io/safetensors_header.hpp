// The torch-free half of the safetensors reader (io/safetensors.hpp): validation of a file's
// 8-byte header length and JSON header, given the file's bytes in memory. SafeTensorsFile::open
// maps the file and calls it; tests/fuzz fuzzes it without LibTorch.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synth {

struct TensorInfo {
  std::string name;
  std::string dtype;  // "F64","F32","F16","BF16","I64","I32","I16","I8","U8","BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data section
};

struct SafeTensorsHeader {
  std::map<std::string, TensorInfo> infos;
  nlohmann::json metadata = nlohmann::json::object();  // __metadata__ or empty object
  uint64_t data_offset = 0;                            // 8 + header length: where the data section starts
};

// Validates bytes[0, file_size) as a safetensors file: the header length, the JSON header, each
// tensor's dtype, shape and data_offsets against the data section, no duplicates, no overlaps.
// Afterwards every [data_offset + begin, data_offset + end) lies inside the file. Throws
// InputError naming `path` (and the tensor) on any defect.
SafeTensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t file_size, const std::string& path);

}  // namespace synth
