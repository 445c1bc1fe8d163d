// The one image type that crosses stage boundaries on the host: uint8, HWC, RGB.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace synth {

struct ImageU8 {
  int height = 0, width = 0, channels = 3;
  std::vector<uint8_t> pixels;  // height * width * channels bytes, row-major HWC
  size_t bytes() const { return size_t(height) * width * channels; }
};

// Decode a JPEG (libjpeg-turbo) or PNG (libpng) file to RGB; grayscale and palette are expanded,
// alpha dropped. Throws InputError naming the file on any decoder error (never longjmps out).
ImageU8 decode_image_file(const std::string& path);
ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);
// Write an 8-bit RGB (or gray, channels = 1) PNG atomically (temp file, fsync, rename).
void write_png(const std::string& path, const ImageU8& image);
// The same as a baseline JPEG of the given quality (1..100, libjpeg's scale), 4:2:0 chroma
// subsampling for RGB (libjpeg's default); lossy, so decoding gives back close, not equal, pixels.
void write_jpeg(const std::string& path, const ImageU8& image, int quality = 90);

// Tiles images (RGB or gray, any sizes; each in a cell of the largest size, black padding) into
// one RGB grid of up to `columns` per row, so a batch can be judged at a glance.
ImageU8 contact_sheet(const std::vector<ImageU8>& images, int columns = 8);

}  // namespace synth
