// Image codecs. libjpeg and libpng report fatal errors by longjmp; a longjmp across a C++ frame
// that owns objects skips their destructors (undefined behaviour). So every libjpeg/libpng call
// sits in a C-style function below that owns no C++ objects: it returns an error code with the
// decoder's message in a char buffer, and the C++ wrappers turn that into InputError naming the
// file. Each decode runs twice: once to read the header (so the caller can refuse absurd sizes and
// allocate the output with a std::vector), once to decode into that buffer.
#include "io/image.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/error.hpp"

namespace synth {

namespace {

constexpr size_t kErrLen = 256;
// Refuse images whose decoded size would be absurd (a corrupt header can claim 65535 x 65535):
// 2^28 pixels is 768 MiB of RGB, far beyond any training image.
constexpr uint64_t kMaxPixels = uint64_t(1) << 28;
// And whose header claims more pixels than the file's bytes can encode, so that a 700-byte file
// cannot cost a 768 MiB buffer (found by fuzzing: 2.4 GB peak with libjpeg's progressive arrays).
// PNG: deflate expands at most 1032:1 (RFC 1951: a 258-byte match takes >= 2 bits) and a scanline
// holds >= 1 bit per pixel, so <= 8256 pixels per byte. Huffman JPEG: each 8x8 block of each
// component takes >= 1 bit (its DC code) and the coarsest component (sampling 1 of 4 per axis)
// still has >= pixels / 1024 blocks, so <= 8192 pixels per byte. Twice that, to refuse nothing valid.
// Arithmetic-coded JPEG can go further on a uniform image (a decision can cost 1e-4 bit), and
// libjpeg then decodes a 188-byte file to 123 megapixels of gray without a warning (found by
// fuzzing): it is held to the same bound, which no photograph comes near (~1-100 pixels per byte).
constexpr uint64_t kMaxPixelsPerByte = 16384;
// libjpeg's whole-image arrays (progressive and multi-scan files keep every coefficient: 2 bytes per
// sample, 1.5-3 per pixel): beyond this it stops with "Backing store not supported", never
// allocating more (a 170-megapixel 4:2:0 progressive JPEG still fits).
constexpr long kJpegMaxMemory = 512L << 20;

bool more_than_bytes_can_hold(uint64_t h, uint64_t w, size_t size) { return h * w > kMaxPixelsPerByte * uint64_t(size); }

// Makes `out` hold `bytes` (rows of a decode in progress), growing its capacity from 16 MiB by
// doubling up to `total`: the memory follows the rows decoded, not the size a header claims (under
// ASan even an untouched reservation costs an eighth of it in shadow). False when the allocation
// fails, so the setjmp-based decoders can clean up and report it.
bool grow_rows(std::vector<uint8_t>* out, size_t bytes, size_t total) noexcept {
  try {
    if (bytes > out->capacity()) out->reserve(std::min(total, std::max({bytes, size_t(16) << 20, 2 * out->capacity()})));
    out->resize(bytes);
    return true;
  } catch (const std::bad_alloc&) {
    return false;
  }
}

// ---------------------------------------------------------------- JPEG

struct JpegErr {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[kErrLen];
};

void jpeg_error_exit_cb(j_common_ptr cinfo) {
  JpegErr* err = reinterpret_cast<JpegErr*>(cinfo->err);
  if (cinfo->err->msg_code == JERR_NO_BACKING_STORE)  // libjpeg's words for "over max_memory_to_use"
    std::snprintf(err->message, kErrLen, "its coefficients need more than %ld MiB (a multi-scan JPEG this large is refused)",
                  kJpegMaxMemory >> 20);
  else
    (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

// Warnings are ignored except the ones that mean the data ran out: libjpeg pads a truncated file
// with gray and reports success, which would silently train on half-gray images.
void jpeg_emit_message_cb(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace messages
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER) {
    JpegErr* err = reinterpret_cast<JpegErr*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
  }
  cinfo->err->num_warnings++;
}

// Decodes to RGB, appending each row to *out (grow_rows: rows never decoded cost nothing). With out == nullptr only
// the header is read (dimensions into *h, *w). Returns 0 on success, 1 on a decoder error (message
// in errbuf).
int jpeg_decode_c(const uint8_t* data, size_t size, std::vector<uint8_t>* out, int* h, int* w, char* errbuf) {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  std::memset(&cinfo, 0, sizeof cinfo);
  err.message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit_cb;
  err.pub.emit_message = jpeg_emit_message_cb;
  if (setjmp(err.jump)) {
    std::snprintf(errbuf, kErrLen, "%s", err.message[0] ? err.message : "JPEG decoder error");
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)size);
  cinfo.mem->max_memory_to_use = kJpegMaxMemory;
  jpeg_read_header(&cinfo, TRUE);
  if (more_than_bytes_can_hold(cinfo.image_height, cinfo.image_width, size)) {
    std::snprintf(errbuf, kErrLen, "header claims %ux%u pixels, more than %zu bytes of %s JPEG data can hold",
                  unsigned(cinfo.image_height), unsigned(cinfo.image_width), size,
                  cinfo.arith_code ? "arithmetic-coded" : "Huffman-coded");
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  // CMYK/YCCK (Adobe, inverted) cannot be converted to RGB by libjpeg: decode CMYK and convert.
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  *h = int(cinfo.image_height);
  *w = int(cinfo.image_width);
  if (out == nullptr) {
    jpeg_destroy_decompress(&cinfo);
    return 0;
  }
  jpeg_start_decompress(&cinfo);
  if (int(cinfo.output_height) != *h || int(cinfo.output_width) != *w ||
      cinfo.output_components != (cmyk ? 4 : 3)) {
    std::snprintf(errbuf, kErrLen, "unexpected JPEG output geometry");
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  const size_t stride = size_t(*w) * 3;
  JSAMPARRAY cmyk_row = nullptr;
  if (cmyk)
    cmyk_row = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE, JDIMENSION(*w) * 4, 1);
  while (cinfo.output_scanline < cinfo.output_height) {
    if (!grow_rows(out, size_t(cinfo.output_scanline + 1) * stride, size_t(*h) * stride)) {
      std::snprintf(errbuf, kErrLen, "out of memory for %dx%d pixels", *h, *w);
      jpeg_destroy_decompress(&cinfo);
      return 1;
    }
    uint8_t* dst = out->data() + size_t(cinfo.output_scanline) * stride;
    if (!cmyk) {
      JSAMPROW row = dst;
      jpeg_read_scanlines(&cinfo, &row, 1);
    } else {
      jpeg_read_scanlines(&cinfo, cmyk_row, 1);
      const uint8_t* src = cmyk_row[0];
      // Adobe stores inverted CMYK, so R = C * K / 255 on the stored values.
      for (int x = 0; x < *w; ++x) {
        const unsigned k = src[4 * x + 3];
        dst[3 * x + 0] = uint8_t((src[4 * x + 0] * k + 127) / 255);
        dst[3 * x + 1] = uint8_t((src[4 * x + 1] * k + 127) / 255);
        dst[3 * x + 2] = uint8_t((src[4 * x + 2] * k + 127) / 255);
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

// ---------------------------------------------------------------- PNG

struct PngSrc {
  const uint8_t* data;
  size_t size, pos;
  char message[kErrLen];
};

void png_read_cb(png_structp png, png_bytep dst, png_size_t n) {
  PngSrc* src = static_cast<PngSrc*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "unexpected end of PNG data (truncated file)");
  std::memcpy(dst, src->data + src->pos, n);
  src->pos += n;
}

void png_error_cb(png_structp png, png_const_charp msg) {
  PngSrc* src = static_cast<PngSrc*>(png_get_error_ptr(png));
  std::snprintf(src->message, kErrLen, "%s", msg ? msg : "PNG decoder error");
  png_longjmp(png, 1);
}

void png_warning_cb(png_structp, png_const_charp) {}

// Decodes to 8-bit RGB: palette and gray expanded, 16-bit reduced, alpha stripped. With
// out == nullptr only the header is read; rows are appended to *out as jpeg_decode_c does. Returns
// 0 on success, 1 on error (message in errbuf).
int png_decode_c(const uint8_t* data, size_t size, std::vector<uint8_t>* out, int* h, int* w, char* errbuf) {
  PngSrc src;
  src.data = data;
  src.size = size;
  src.pos = 0;
  src.message[0] = '\0';
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
    std::snprintf(errbuf, kErrLen, "not a PNG file (bad signature)");
    return 1;
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_error_cb, png_warning_cb);
  if (png == nullptr) {
    std::snprintf(errbuf, kErrLen, "png_create_read_struct failed");
    return 1;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(errbuf, kErrLen, "png_create_info_struct failed");
    return 1;
  }
  if (setjmp(png_jmpbuf(png))) {
    std::snprintf(errbuf, kErrLen, "%s", src.message[0] ? src.message : "PNG decoder error");
    png_destroy_read_struct(&png, &info, nullptr);
    return 1;
  }
  png_set_read_fn(png, &src, png_read_cb);
  // Skip every ancillary chunk but tRNS: no decoded pixel depends on them (no gamma or colour
  // management here), and libpng allocates a text or ICC chunk's stated length before reading it.
  // Its 8 MB cap is only a warning for ancillary chunks: a 67-byte file with an iTXt claiming 1.2 GB
  // got the 1.2 GB (found by fuzzing). Skipped chunks are read in small pieces and dropped.
  static const png_byte kSkip[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt";
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, 0);
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, kSkip, int(sizeof kSkip / 5));
  png_read_info(png, info);
  *w = int(png_get_image_width(png, info));
  *h = int(png_get_image_height(png, info));
  if (more_than_bytes_can_hold(uint64_t(*h), uint64_t(*w), size)) {
    std::snprintf(errbuf, kErrLen, "header claims %dx%d pixels, more than %zu bytes of deflate data can hold", *h, *w,
                  size);
    png_destroy_read_struct(&png, &info, nullptr);
    return 1;
  }
  if (out == nullptr) {
    png_destroy_read_struct(&png, &info, nullptr);
    return 0;
  }
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);
  // A tRNS chunk becomes an alpha channel when palette_to_rgb expands it: strip that one too.
  if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
      png_get_rowbytes(png, info) != size_t(*w) * 3) {
    std::snprintf(errbuf, kErrLen, "unsupported PNG layout after conversion to RGB");
    png_destroy_read_struct(&png, &info, nullptr);
    return 1;
  }
  // Row by row (each Adam7 pass refines the rows in place), so nothing is allocated that a
  // longjmp would leak.
  const size_t stride = size_t(*w) * 3;
  const size_t total = size_t(*h) * stride;
  for (int pass = 0; pass < passes; ++pass)
    for (int y = 0; y < *h; ++y) {
      // Adam7's first pass already spans every row; a plain PNG grows row by row.
      const size_t need = passes > 1 ? total : size_t(y + 1) * stride;
      if (out->size() < need && !grow_rows(out, need, total)) {
        std::snprintf(errbuf, kErrLen, "out of memory for %dx%d pixels", *h, *w);
        png_destroy_read_struct(&png, &info, nullptr);
        return 1;
      }
      png_read_row(png, out->data() + size_t(y) * stride, nullptr);
    }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return 0;
}

struct PngDst {
  FILE* file;
  char message[kErrLen];
};

void png_write_error_cb(png_structp png, png_const_charp msg) {
  PngDst* dst = static_cast<PngDst*>(png_get_error_ptr(png));
  std::snprintf(dst->message, kErrLen, "%s", msg ? msg : "PNG encoder error");
  png_longjmp(png, 1);
}

int png_write_c(FILE* file, const uint8_t* pixels, int h, int w, int channels, char* errbuf) {
  PngDst dst;
  dst.file = file;
  dst.message[0] = '\0';
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &dst, png_write_error_cb, png_warning_cb);
  if (png == nullptr) {
    std::snprintf(errbuf, kErrLen, "png_create_write_struct failed");
    return 1;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(errbuf, kErrLen, "png_create_info_struct failed");
    return 1;
  }
  if (setjmp(png_jmpbuf(png))) {
    std::snprintf(errbuf, kErrLen, "%s", dst.message[0] ? dst.message : "PNG encoder error");
    png_destroy_write_struct(&png, &info);
    return 1;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, png_uint_32(w), png_uint_32(h), 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < h; ++y) png_write_row(png, pixels + size_t(y) * size_t(w) * size_t(channels));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return 0;
}

// Encodes 8-bit RGB or gray rows into `file` as a baseline JPEG. Returns 0 on success, 1 on an
// encoder error (message in errbuf).
int jpeg_write_c(FILE* file, const uint8_t* pixels, int h, int w, int channels, int quality, char* errbuf) {
  jpeg_compress_struct cinfo;
  JpegErr err;
  std::memset(&cinfo, 0, sizeof cinfo);
  err.message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit_cb;
  if (setjmp(err.jump)) {
    std::snprintf(errbuf, kErrLen, "%s", err.message[0] ? err.message : "JPEG encoder error");
    jpeg_destroy_compress(&cinfo);
    return 1;
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, file);
  cinfo.image_width = JDIMENSION(w);
  cinfo.image_height = JDIMENSION(h);
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    // libjpeg's row type is non-const; it only reads the rows it is given.
    JSAMPROW row = const_cast<uint8_t*>(pixels + size_t(cinfo.next_scanline) * size_t(w) * size_t(channels));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return 0;
}

void check_writable(const std::string& path, const ImageU8& image, const char* who) {
  if (image.channels != 1 && image.channels != 3)
    throw Error(path + ": " + who + " supports 1 or 3 channels, got " + std::to_string(image.channels));
  if (image.height <= 0 || image.width <= 0 || image.pixels.size() != image.bytes())
    throw Error(path + ": " + who + " got an inconsistent image (" + std::to_string(image.height) + "x" +
                std::to_string(image.width) + "x" + std::to_string(image.channels) + ", " +
                std::to_string(image.pixels.size()) + " bytes)");
}

// Runs encode(file, errbuf) (0 = success) on a temp file in the same directory, then fsync and
// rename, so rename() is atomic on the same file system: readers see either the old file or the
// complete new one, never a half-written image.
template <typename Encode>
void write_atomically(const std::string& path, const char* kind, const Encode& encode) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) throw Error(path + ": cannot create temporary file " + tmp + ": " + std::strerror(errno));
  char err[kErrLen] = {0};
  int rc = encode(file, err);
  if (rc == 0 && std::fflush(file) != 0) {
    rc = 1;
    std::snprintf(err, kErrLen, "flush failed: %s", std::strerror(errno));
  }
  if (rc == 0 && ::fsync(::fileno(file)) != 0) {
    rc = 1;
    std::snprintf(err, kErrLen, "fsync failed: %s", std::strerror(errno));
  }
  if (std::fclose(file) != 0 && rc == 0) {
    rc = 1;
    std::snprintf(err, kErrLen, "close failed: %s", std::strerror(errno));
  }
  if (rc == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) {
    rc = 1;
    std::snprintf(err, kErrLen, "rename failed: %s", std::strerror(errno));
  }
  if (rc != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write " + kind + ": " + err);
  }
}

using DecodeFn = int (*)(const uint8_t*, size_t, std::vector<uint8_t>*, int*, int*, char*);

ImageU8 decode_with(DecodeFn fn, const char* kind, const uint8_t* data, size_t size, const std::string& name) {
  char err[kErrLen] = {0};
  int h = 0, w = 0;
  if (fn(data, size, nullptr, &h, &w, err) != 0) throw InputError(name + ": corrupt " + kind + ": " + err);
  if (h <= 0 || w <= 0 || uint64_t(h) * uint64_t(w) > kMaxPixels)
    throw InputError(name + ": " + kind + " header claims an unusable size " + std::to_string(h) + "x" + std::to_string(w));
  ImageU8 img;
  img.height = h;
  img.width = w;
  img.channels = 3;
  // Not allocated here: the decoder grows the buffer with the rows it decodes, so a header that lies
  // about the size costs nothing before the data runs out.
  int h2 = 0, w2 = 0;
  if (fn(data, size, &img.pixels, &h2, &w2, err) != 0) throw InputError(name + ": corrupt " + kind + ": " + err);
  if (img.pixels.size() != img.bytes()) throw InputError(name + ": corrupt " + kind + ": fewer rows than its header states");
  return img;
}

}  // namespace

ImageU8 decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors) {
  if (data == nullptr || size < 4) throw InputError(name_for_errors + ": not an image (only " + std::to_string(size) + " bytes)");
  if (data[0] == 0xFF && data[1] == 0xD8) return decode_with(jpeg_decode_c, "JPEG", data, size, name_for_errors);
  if (size >= 8 && png_sig_cmp(data, 0, 8) == 0) return decode_with(png_decode_c, "PNG", data, size, name_for_errors);
  throw InputError(name_for_errors + ": not a JPEG or PNG file (unrecognized signature)");
}

ImageU8 decode_image_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(with_errno(path + ": cannot open image file"));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path + ": cannot read image file");
  // 1 GiB of compressed data is not a training image; refuse before allocating.
  if (size > (std::streamoff(1) << 30)) throw InputError(path + ": image file larger than 1 GiB");
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) throw InputError(path + ": cannot read image file");
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

void write_png(const std::string& path, const ImageU8& image) {
  check_writable(path, image, "write_png");
  write_atomically(path, "PNG", [&](FILE* file, char* err) {
    return png_write_c(file, image.pixels.data(), image.height, image.width, image.channels, err);
  });
}

void write_jpeg(const std::string& path, const ImageU8& image, int quality) {
  check_writable(path, image, "write_jpeg");
  if (quality < 1 || quality > 100) throw Error(path + ": write_jpeg quality " + std::to_string(quality) + " outside 1..100");
  write_atomically(path, "JPEG", [&](FILE* file, char* err) {
    return jpeg_write_c(file, image.pixels.data(), image.height, image.width, image.channels, quality, err);
  });
}

}  // namespace synth
