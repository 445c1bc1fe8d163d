// Fuzzes the safetensors reader's validation (src/io/safetensors_header.cpp:
// parse_safetensors_header, which SafeTensorsFile::open runs on the mapped file): the 8-byte header
// length, the JSON header, dtypes, shapes, data_offsets, overlaps. The input is the whole file.
// Besides "no crash", it checks the reader's promise that after a successful parse every tensor's
// bytes lie inside the file: it reads each one (ASan sees any read past the input buffer) and
// checks its size against dtype x shape.
#include <cstring>

#include "fuzz_common.hpp"
#include "io/safetensors_header.hpp"

namespace {

uint64_t elem_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  return 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  synth::SafeTensorsHeader h;
  if (!fuzz::expect_ok_or_error([&] { h = synth::parse_safetensors_header(data, size, "fuzz.safetensors"); })) return 0;
  fuzz::check(h.data_offset >= 8 && h.data_offset <= size, "data section starts inside the file");
  fuzz::check(h.metadata.is_object(), "metadata is an object");
  uint8_t sink = 0;
  for (const auto& [name, info] : h.infos) {
    fuzz::check(name == info.name, "map key is the tensor name");
    fuzz::check(info.begin <= info.end && info.end <= size - h.data_offset, "tensor bytes inside the data section");
    uint64_t n = elem_bytes(info.dtype);
    for (int64_t d : info.shape) {
      fuzz::check(d >= 0, "non-negative dims");
      n *= uint64_t(d);
    }
    fuzz::check(n == info.end - info.begin, "byte range matches dtype x shape");
    // Touch every byte the loader would memcpy (SafeTensorsFile::tensor_raw).
    const uint8_t* p = data + h.data_offset + info.begin;
    for (uint64_t i = 0; i < info.end - info.begin; ++i) sink ^= p[i];
  }
  volatile uint8_t keep = sink;
  (void)keep;
  return 0;
}
