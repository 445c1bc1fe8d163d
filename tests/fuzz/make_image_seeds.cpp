// Writes the seed images of the image fuzzer (tests/fuzz/corpus/image/): one small file per
// decoder path of src/io/image_codec.cpp - JPEG baseline 4:2:0 / 4:4:4, grayscale, progressive,
// arithmetic-coded, with restart markers, Adobe CMYK and YCCK; PNG gray 1/2/4/8/16-bit, gray +
// alpha, palette with and without tRNS, RGB 8/16-bit, RGBA, Adam7-interlaced. Built only on request:
//   cmake --build build-fuzz --target make_image_seeds && build-fuzz/make_image_seeds OUT_DIR
#include <algorithm>
#include <cstdio>  // before jpeglib.h, which uses FILE and size_t
#include <cstdlib>

#include <jpeglib.h>
#include <png.h>

#include <string>
#include <vector>

namespace {

std::string out_dir;

FILE* create(const std::string& name) {
  const std::string path = out_dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::printf("%s\n", path.c_str());
  return f;
}

// A deterministic gradient with some texture, `channels` bytes per pixel.
std::vector<uint8_t> pattern(int h, int w, int channels) {
  std::vector<uint8_t> p(size_t(h) * w * channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) p[(size_t(y) * w + x) * channels + c] = uint8_t((x * 37 + y * 11 + c * 85) ^ (x * y));
  return p;
}

struct JpegOpts {
  J_COLOR_SPACE in = JCS_RGB, out = JCS_YCbCr;
  int channels = 3;
  bool progressive = false, arithmetic = false, full_chroma = false;
  int restart_rows = 0;
  int quality = 75;
};

void jpeg(const std::string& name, int h, int w, const JpegOpts& o) {
  FILE* f = create(name);
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = JDIMENSION(w);
  c.image_height = JDIMENSION(h);
  c.input_components = o.channels;
  c.in_color_space = o.in;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, o.out);  // CMYK/YCCK writes the Adobe marker
  jpeg_set_quality(&c, o.quality, TRUE);
  if (o.progressive) jpeg_simple_progression(&c);
  c.arith_code = o.arithmetic ? TRUE : FALSE;
  c.restart_in_rows = o.restart_rows;
  if (o.full_chroma)
    for (int i = 0; i < c.num_components; ++i) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(&c, TRUE);
  const auto px = pattern(h, w, o.channels);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(px.data() + size_t(c.next_scanline) * w * o.channels);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

void png(const std::string& name, int h, int w, int color, int depth, bool interlace, bool trns = false) {
  FILE* f = create(name);
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(p);
  if (setjmp(png_jmpbuf(p))) {
    std::fprintf(stderr, "libpng failed on %s\n", name.c_str());
    std::exit(1);
  }
  png_init_io(p, f);
  png_set_IHDR(p, info, png_uint_32(w), png_uint_32(h), depth, color,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  int samples = 1;
  if (color == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[16];
    for (int i = 0; i < 16; ++i) pal[i] = {png_byte(i * 16), png_byte(255 - i * 16), png_byte(i * 7)};
    png_set_PLTE(p, info, pal, 1 << std::min(depth, 4));
    if (trns) {
      png_byte alpha[4] = {0, 128, 255, 64};
      png_set_tRNS(p, info, alpha, 4, nullptr);
    }
  } else if (trns && color == PNG_COLOR_TYPE_GRAY) {
    png_color_16 t{};
    t.gray = 3;
    png_set_tRNS(p, info, nullptr, 0, &t);
  }
  if (color == PNG_COLOR_TYPE_GRAY_ALPHA) samples = 2;
  if (color == PNG_COLOR_TYPE_RGB) samples = 3;
  if (color == PNG_COLOR_TYPE_RGB_ALPHA) samples = 4;
  png_write_info(p, info);
  const size_t rowbytes = (size_t(w) * samples * depth + 7) / 8;
  std::vector<uint8_t> rows(rowbytes * h);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = uint8_t(i * 29 + i / rowbytes * 13);
  if (color == PNG_COLOR_TYPE_PALETTE && depth == 8)
    for (auto& b : rows) b &= 15;  // indices inside the 16-entry palette
  std::vector<png_bytep> ptrs(h);
  for (int y = 0; y < h; ++y) ptrs[y] = rows.data() + size_t(y) * rowbytes;
  png_write_image(p, ptrs.data());
  png_write_end(p, nullptr);
  png_destroy_write_struct(&p, &info);
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  JpegOpts o;
  jpeg("baseline_420_17x11.jpg", 11, 17, o);
  o.full_chroma = true;
  jpeg("baseline_444_8x8.jpg", 8, 8, o);
  o = JpegOpts{};
  o.progressive = true;
  jpeg("progressive_16x9.jpg", 9, 16, o);
  o = JpegOpts{};
  o.arithmetic = true;
  jpeg("arithmetic_9x7.jpg", 7, 9, o);
  o = JpegOpts{};
  o.restart_rows = 1;
  jpeg("restart_24x20.jpg", 20, 24, o);
  o = JpegOpts{};
  o.in = JCS_GRAYSCALE;
  o.out = JCS_GRAYSCALE;
  o.channels = 1;
  jpeg("gray_10x6.jpg", 6, 10, o);
  o = JpegOpts{};
  o.in = JCS_CMYK;
  o.out = JCS_CMYK;
  o.channels = 4;
  jpeg("cmyk_adobe_8x5.jpg", 5, 8, o);
  o.out = JCS_YCCK;
  jpeg("ycck_adobe_8x5.jpg", 5, 8, o);

  png("gray1_9x5.png", 5, 9, PNG_COLOR_TYPE_GRAY, 1, false);
  png("gray2_7x3.png", 3, 7, PNG_COLOR_TYPE_GRAY, 2, false);
  png("gray4_5x4_trns.png", 4, 5, PNG_COLOR_TYPE_GRAY, 4, false, true);
  png("gray8_6x6.png", 6, 6, PNG_COLOR_TYPE_GRAY, 8, false);
  png("gray16_4x3.png", 3, 4, PNG_COLOR_TYPE_GRAY, 16, false);
  png("gray_alpha8_5x5.png", 5, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false);
  png("palette4_6x4.png", 4, 6, PNG_COLOR_TYPE_PALETTE, 4, false);
  png("palette8_7x5_trns.png", 5, 7, PNG_COLOR_TYPE_PALETTE, 8, false, true);
  png("rgb8_8x6.png", 6, 8, PNG_COLOR_TYPE_RGB, 8, false);
  png("rgb16_3x3.png", 3, 3, PNG_COLOR_TYPE_RGB, 16, false);
  png("rgba8_6x5.png", 5, 6, PNG_COLOR_TYPE_RGB_ALPHA, 8, false);
  png("rgb8_adam7_11x9.png", 9, 11, PNG_COLOR_TYPE_RGB, 8, true);
  png("rgba16_adam7_5x5.png", 5, 5, PNG_COLOR_TYPE_RGB_ALPHA, 16, true);
  return 0;
}
