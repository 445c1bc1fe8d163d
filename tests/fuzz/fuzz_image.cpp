// Fuzzes the JPEG and PNG decoders (src/io/image_codec.cpp: decode_image_memory, the in-memory
// entry point decode_image_file also ends in; it picks libjpeg-turbo or libpng by signature and
// wraps their longjmp error handling). A decoded image must be RGB with height x width x 3 bytes.
#include "fuzz_common.hpp"
#include "io/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  synth::ImageU8 img;
  if (!fuzz::expect_ok_or_error([&] { img = synth::decode_image_memory(data, size, "fuzz-image"); })) return 0;
  fuzz::check(img.channels == 3 && img.height > 0 && img.width > 0, "decoded image is non-empty RGB");
  fuzz::check(img.pixels.size() == img.bytes(), "pixel buffer matches the geometry");
  return 0;
}
