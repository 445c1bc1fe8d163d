#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/image.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using synth::ImageU8;

namespace {

using TempDir = synth::test::ScratchDir;

// Smooth gradients plus a little CounterRng noise: natural-image-like content for which a
// quality-95 JPEG is close to lossless.
ImageU8 test_image(int h, int w, int channels, uint64_t seed) {
  ImageU8 img;
  img.height = h;
  img.width = w;
  img.channels = channels;
  img.pixels.resize(img.bytes());
  synth::CounterRng rng(seed, 0, synth::RngPurpose::kNoise);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) {
        const double v = 128 + 80 * std::sin(0.07 * x + 0.5 * c) * std::cos(0.05 * y) + rng.uniform(-4.f, 4.f);
        img.pixels[(size_t(y) * w + x) * channels + c] = uint8_t(std::lround(std::min(255.0, std::max(0.0, v))));
      }
  return img;
}

std::vector<uint8_t> encode_jpeg(const ImageU8& img, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = JDIMENSION(img.width);
  cinfo.image_height = JDIMENSION(img.height);
  cinfo.input_components = img.channels;
  cinfo.in_color_space = img.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(img.pixels.data()) + size_t(cinfo.next_scanline) * img.width * img.channels;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buf, buf + size);
  std::free(buf);
  return out;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(n));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The dimensions in a JPEG's SOF segment or a PNG's IHDR chunk (its CRC-32 recomputed), as a
// corrupt or hostile header would state them.
std::vector<uint8_t> with_jpeg_size(std::vector<uint8_t> jpeg, int h, int w) {
  for (size_t i = 2; i + 9 < jpeg.size();) {
    const int marker = jpeg[i + 1], length = jpeg[i + 2] << 8 | jpeg[i + 3];
    if (marker >= 0xC0 && marker <= 0xC2) {
      jpeg[i + 5] = uint8_t(h >> 8), jpeg[i + 6] = uint8_t(h), jpeg[i + 7] = uint8_t(w >> 8), jpeg[i + 8] = uint8_t(w);
      return jpeg;
    }
    i += 2 + size_t(length);
  }
  FAIL("no SOF segment");
  return jpeg;
}

std::vector<uint8_t> with_png_size(std::vector<uint8_t> png, uint32_t h, uint32_t w) {
  for (int k = 0; k < 4; ++k) png[16 + k] = uint8_t(w >> (24 - 8 * k)), png[20 + k] = uint8_t(h >> (24 - 8 * k));
  uint32_t crc = 0xFFFFFFFFu;  // CRC-32 (PNG spec, Annex D) over "IHDR" and its 13 data bytes
  for (size_t i = 12; i < 29; ++i) {
    crc ^= png[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xFFFFFFFFu;
  for (int k = 0; k < 4; ++k) png[29 + k] = uint8_t(crc >> (24 - 8 * k));
  return png;
}

double mean_abs_diff(const ImageU8& a, const ImageU8& b) {
  double s = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return s / double(a.pixels.size());
}

}  // namespace

TEST_CASE("jpeg: quality-95 RGB and grayscale decode close to the source") {
  TempDir dir;
  const ImageU8 src = test_image(37, 53, 3, 1);  // odd sizes exercise partial MCUs
  const std::string path = dir.file("rgb.jpg");
  const auto jpeg = encode_jpeg(src, 95);
  write_bytes(path, jpeg, jpeg.size());
  const ImageU8 got = synth::decode_image_file(path);
  REQUIRE(got.height == 37);
  REQUIRE(got.width == 53);
  REQUIRE(got.channels == 3);
  REQUIRE(got.pixels.size() == src.pixels.size());
  const double mad = mean_abs_diff(src, got);
  MESSAGE("JPEG q95 mean abs diff " << mad);
  CHECK(mad < 3.0);

  const ImageU8 gray = test_image(20, 24, 1, 2);
  const auto gjpeg = encode_jpeg(gray, 95);
  const ImageU8 g = synth::decode_image_memory(gjpeg.data(), gjpeg.size(), "gray.jpg");
  REQUIRE(g.channels == 3);
  REQUIRE(g.height == 20);
  double gmad = 0;
  for (size_t p = 0; p < gray.pixels.size(); ++p) {
    CHECK(g.pixels[3 * p] == g.pixels[3 * p + 1]);
    CHECK(g.pixels[3 * p] == g.pixels[3 * p + 2]);
    gmad += std::abs(int(g.pixels[3 * p]) - int(gray.pixels[p]));
  }
  CHECK(gmad / double(gray.pixels.size()) < 3.0);
}

TEST_CASE("png: RGB and gray round trips are exact; write is atomic") {
  TempDir dir;
  const ImageU8 rgb = test_image(31, 17, 3, 3);
  const std::string path = dir.file("rgb.png");
  synth::write_png(path, rgb);
  const ImageU8 back = synth::decode_image_file(path);
  CHECK(back.height == 31);
  CHECK(back.width == 17);
  CHECK(back.pixels == rgb.pixels);
  // Overwriting leaves exactly one file (no temp files left behind).
  synth::write_png(path, test_image(5, 6, 3, 4));
  CHECK(synth::decode_image_file(path).width == 6);
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);

  const ImageU8 gray = test_image(9, 11, 1, 5);
  synth::write_png(dir.file("gray.png"), gray);
  const ImageU8 g = synth::decode_image_file(dir.file("gray.png"));
  REQUIRE(g.channels == 3);
  for (size_t p = 0; p < gray.pixels.size(); ++p) {
    CHECK(g.pixels[3 * p] == gray.pixels[p]);
    CHECK(g.pixels[3 * p + 2] == gray.pixels[p]);
  }
  CHECK_THROWS_AS(synth::write_png(dir.file("nodir/x.png"), rgb), synth::Error);
  ImageU8 bad = rgb;
  bad.pixels.pop_back();
  CHECK_THROWS_AS(synth::write_png(dir.file("bad.png"), bad), synth::Error);
}

TEST_CASE("jpeg: write_jpeg writes libjpeg's own encoding, atomically; it decodes close to the source") {
  TempDir dir;
  const ImageU8 rgb = test_image(37, 53, 3, 11);
  const std::string path = dir.file("rgb.jpg");
  synth::write_jpeg(path, rgb, 95);
  // The same settings through libjpeg's memory destination give the same bytes.
  CHECK(read_bytes(path) == encode_jpeg(rgb, 95));
  const ImageU8 back = synth::decode_image_file(path);
  REQUIRE(back.height == 37);
  REQUIRE(back.width == 53);
  CHECK(mean_abs_diff(rgb, back) < 3.0);
  // A lower quality is a different, smaller file.
  synth::write_jpeg(path, rgb, 30);
  CHECK(read_bytes(path) == encode_jpeg(rgb, 30));
  CHECK(read_bytes(path).size() < encode_jpeg(rgb, 95).size());
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);

  const ImageU8 gray = test_image(20, 24, 1, 12);
  synth::write_jpeg(dir.file("gray.jpg"), gray, 95);
  CHECK(read_bytes(dir.file("gray.jpg")) == encode_jpeg(gray, 95));
  const ImageU8 g = synth::decode_image_file(dir.file("gray.jpg"));
  REQUIRE(g.channels == 3);
  CHECK(g.pixels[0] == g.pixels[2]);

  CHECK_THROWS_AS(synth::write_jpeg(dir.file("nodir/x.jpg"), rgb), synth::Error);
  CHECK_THROWS_AS(synth::write_jpeg(dir.file("q.jpg"), rgb, 0), synth::Error);
  ImageU8 bad = rgb;
  bad.channels = 4;
  CHECK_THROWS_AS(synth::write_jpeg(dir.file("bad.jpg"), bad), synth::Error);
  CHECK(!fs::exists(dir.file("q.jpg")));
  CHECK(!fs::exists(dir.file("bad.jpg")));
}

TEST_CASE("png: 16-bit RGBA is reduced to 8-bit RGB with alpha dropped") {
  TempDir dir;
  const std::string path = dir.file("rgba16.png");
  const int h = 4, w = 5;
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_ADAM7, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<uint8_t> row(size_t(w) * 8);
  for (int pass = 0, passes = png_set_interlace_handling(png); pass < passes; ++pass)
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 4; ++c) {
          // value v*257 so strip (high byte) and scale (rounding) agree on v
          const uint8_t v = uint8_t(c == 3 ? 7 : 10 * y + 3 * x + 50 * c);
          row[size_t(x) * 8 + c * 2] = v;  // big-endian 16-bit
          row[size_t(x) * 8 + c * 2 + 1] = v;
        }
      png_write_row(png, row.data());
    }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
  const ImageU8 img = synth::decode_image_file(path);
  REQUIRE(img.height == h);
  REQUIRE(img.width == w);
  REQUIRE(img.channels == 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) CHECK(img.pixels[(size_t(y) * w + x) * 3 + c] == uint8_t(10 * y + 3 * x + 50 * c));
}

TEST_CASE("corrupt, truncated and missing images are InputErrors naming the file") {
  TempDir dir;
  const auto jpeg = encode_jpeg(test_image(64, 64, 3, 6), 95);
  const std::string tj = dir.file("truncated.jpg");
  write_bytes(tj, jpeg, jpeg.size() / 2);
  CHECK_THROWS_WITH_AS(synth::decode_image_file(tj), doctest::Contains(tj.c_str()), synth::InputError);

  std::vector<uint8_t> corrupt = jpeg;
  for (size_t i = jpeg.size() / 3; i < jpeg.size() / 3 + 200; ++i) corrupt[i] = uint8_t(i * 37);
  const std::string cj = dir.file("scrambled.jpg");
  write_bytes(cj, corrupt, 600);  // header intact, scan data garbage and cut short
  CHECK_THROWS_WITH_AS(synth::decode_image_file(cj), doctest::Contains(cj.c_str()), synth::InputError);

  const std::string gj = dir.file("garbage.jpg");
  std::vector<uint8_t> garbage(1000);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = uint8_t(i * 91 + 7);
  write_bytes(gj, garbage, garbage.size());
  CHECK_THROWS_WITH_AS(synth::decode_image_file(gj), doctest::Contains(gj.c_str()), synth::InputError);
  // JPEG signature followed by garbage reaches libjpeg's error_exit path.
  garbage[0] = 0xFF;
  garbage[1] = 0xD8;
  write_bytes(gj, garbage, garbage.size());
  CHECK_THROWS_WITH_AS(synth::decode_image_file(gj), doctest::Contains(gj.c_str()), synth::InputError);

  synth::write_png(dir.file("full.png"), test_image(40, 40, 3, 7));
  const auto png = read_bytes(dir.file("full.png"));
  const std::string tp = dir.file("truncated.png");
  for (size_t cut : {size_t(10), size_t(40), png.size() / 2, png.size() - 5}) {
    CAPTURE(cut);
    write_bytes(tp, png, cut);
    CHECK_THROWS_WITH_AS(synth::decode_image_file(tp), doctest::Contains(tp.c_str()), synth::InputError);
  }
  std::vector<uint8_t> bad_crc = png;
  bad_crc[png.size() / 2] ^= 0x5A;
  write_bytes(tp, bad_crc, bad_crc.size());
  CHECK_THROWS_WITH_AS(synth::decode_image_file(tp), doctest::Contains(tp.c_str()), synth::InputError);

  const std::string missing = dir.file("missing.png");
  CHECK_THROWS_WITH_AS(synth::decode_image_file(missing), doctest::Contains(missing.c_str()), synth::InputError);
  const std::string empty = dir.file("empty.jpg");
  write_bytes(empty, {}, 0);
  CHECK_THROWS_WITH_AS(synth::decode_image_file(empty), doctest::Contains(empty.c_str()), synth::InputError);
}

TEST_CASE("a header claiming more pixels than the file's bytes can encode is refused before any buffer") {
  // Found by fuzzing: a 654-byte progressive JPEG claiming 16000x16000 cost 2.4 GB (a zero-filled
  // 768 MiB RGB buffer, then libjpeg's coefficient arrays) before the data ran out.
  const auto jpeg = encode_jpeg(test_image(16, 16, 3, 8), 95);
  const auto big_jpeg = with_jpeg_size(jpeg, 16000, 16000);
  CHECK_THROWS_WITH_AS(synth::decode_image_memory(big_jpeg.data(), big_jpeg.size(), "claims.jpg"),
                       doctest::Contains("claims.jpg: corrupt JPEG: header claims 16000x16000 pixels, more than"),
                       synth::InputError);
  TempDir dir;
  synth::write_png(dir.file("small.png"), test_image(16, 16, 3, 9));
  const auto png = read_bytes(dir.file("small.png"));
  CHECK(synth::decode_image_memory(with_png_size(png, 16, 16).data(), png.size(), "same.png").height == 16);
  const auto big_png = with_png_size(png, 16000, 16000);
  CHECK_THROWS_WITH_AS(synth::decode_image_memory(big_png.data(), big_png.size(), "claims.png"),
                       doctest::Contains("claims.png: corrupt PNG: header claims 16000x16000 pixels, more than"),
                       synth::InputError);
  // Found by fuzzing: arithmetic-coded JPEGs of under 200 bytes that libjpeg decodes, with no
  // warning, to 123 and 16.5 megapixels of gray (tests/fuzz/regressions/image).
  const std::string regressions = std::string(SYNTH_SOURCE_DIR) + "/tests/fuzz/regressions/image/";
  for (const char* name : {"arithmetic_jpeg_decodes_2304x53503_gray_from_188_bytes.jpg",
                           "arithmetic_jpeg_decodes_253x65289_gray_from_179_bytes.jpg"}) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(synth::decode_image_file(regressions + name),
                         doctest::Contains("bytes of arithmetic-coded JPEG data can hold"), synth::InputError);
  }
  // A multi-scan JPEG whose byte count passes the bound: libjpeg's coefficient arrays stop at 512 MiB.
  CHECK_THROWS_WITH_AS(
      synth::decode_image_file(regressions +
                               "progressive_jpeg_16000x16000_padded_to_pass_the_byte_bound_coefficients_over_512MiB.jpg"),
      doctest::Contains("its coefficients need more than 512 MiB"), synth::InputError);
  // The bound (16384 pixels per byte, twice what deflate or Huffman JPEG can reach) refuses nothing
  // real: uniform images, the most compressible there are, still decode.
  ImageU8 flat = test_image(1024, 1024, 3, 10);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t(0));
  synth::write_png(dir.file("flat.png"), flat);
  CHECK(synth::decode_image_file(dir.file("flat.png")).pixels == flat.pixels);
  const auto flat_jpeg = encode_jpeg(flat, 95);
  CHECK(synth::decode_image_memory(flat_jpeg.data(), flat_jpeg.size(), "flat.jpg").width == 1024);
  // The decoder's buffer grows with the rows (from 16 MiB, doubling): rows kept across the growth.
  const ImageU8 big = test_image(2400, 2400, 3, 11);  // 17 MB of RGB
  synth::write_png(dir.file("big.png"), big);
  CHECK(synth::decode_image_file(dir.file("big.png")).pixels == big.pixels);
  const auto photo_jpeg = encode_jpeg(big, 95);
  CHECK(mean_abs_diff(synth::decode_image_memory(photo_jpeg.data(), photo_jpeg.size(), "big.jpg"), big) < 2.0);
}
