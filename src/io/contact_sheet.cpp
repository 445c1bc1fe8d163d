#include <algorithm>

#include "core/error.hpp"
#include "io/image.hpp"

namespace synth {

ImageU8 contact_sheet(const std::vector<ImageU8>& images, int columns) {
  if (images.empty()) throw Error("contact_sheet: no images");
  const int cols = int(std::min<size_t>(size_t(std::max(columns, 1)), images.size()));
  const int rows = int((images.size() + size_t(cols) - 1) / size_t(cols));
  int h = 0, w = 0;
  for (const ImageU8& im : images) h = std::max(h, im.height), w = std::max(w, im.width);
  ImageU8 sheet;
  sheet.height = rows * h;
  sheet.width = cols * w;
  sheet.pixels.assign(sheet.bytes(), 0);
  for (size_t k = 0; k < images.size(); ++k) {
    const ImageU8& im = images[k];
    const int r = int(k) / cols, c = int(k) % cols;
    for (int y = 0; y < im.height; ++y)
      for (int x = 0; x < im.width; ++x)
        for (int ch = 0; ch < 3; ++ch)
          sheet.pixels[(size_t(r * h + y) * size_t(sheet.width) + size_t(c * w + x)) * 3 + size_t(ch)] =
              im.pixels[(size_t(y) * size_t(im.width) + size_t(x)) * size_t(im.channels) + size_t(im.channels == 1 ? 0 : ch)];
  }
  return sheet;
}

}  // namespace synth
