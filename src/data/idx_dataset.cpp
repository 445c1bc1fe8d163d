// IDX datasets (LeCun's MNIST format, used by Fashion-MNIST): big-endian magic 0x00000803
// (uint8, 3 dims) for images and 0x00000801 (uint8, 1 dim) for labels. zlib's gzread reads both
// gzip and plain files. A split is small (60k x 28 x 28 = 47 MB), so it is loaded into memory
// once and every load() is a copy.
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/dataset.hpp"

namespace synth {

namespace {

constexpr uint32_t kImageMagic = 0x00000803, kLabelMagic = 0x00000801;
// No IDX image split we train on approaches this; a corrupt header must not trigger a huge read.
constexpr uint64_t kMaxIdxBytes = uint64_t(4) << 30;

class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (f_ == nullptr) throw InputError(with_errno(path + ": cannot open IDX file"));
  }
  ~GzFile() {
    if (f_ != nullptr) gzclose(f_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads exactly n bytes; a short read (truncated file) or a gzip error is an InputError.
  void read_exact(uint8_t* dst, uint64_t n, const char* what) {
    uint64_t done = 0;
    while (done < n) done += read_some(dst + done, n - done, n, done, what);
  }
  // The same into out (resized to n), which grows with the bytes actually read (16 MiB, then
  // doubling): a corrupt header claiming gigabytes of pixels in a small file is reported as
  // truncated instead of first allocating everything it claims.
  void read_exact(std::vector<uint8_t>& out, uint64_t n, const char* what) {
    constexpr uint64_t kFirstChunk = uint64_t(16) << 20;
    out.clear();
    uint64_t done = 0;
    while (done < n) {
      const uint64_t want = std::min(n - done, std::max(kFirstChunk, done));
      out.resize(size_t(done + want));
      done += read_some(out.data() + done, want, n, done, what);
    }
  }
  // Reads up to n bytes (at least one) of the `total` that `what` needs, `done` of them read already.
  uint64_t read_some(uint8_t* dst, uint64_t n, uint64_t total, uint64_t done, const char* what) {
    const unsigned chunk = unsigned(std::min<uint64_t>(n, uint64_t(1) << 30));
    const int got = gzread(f_, dst, chunk);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(f_, &errnum);
      throw InputError(path_ + ": corrupt IDX file while reading " + what + ": " + (msg ? msg : "gzip error"));
    }
    if (got == 0)
      throw InputError(path_ + ": truncated IDX file: " + what + " needs " + std::to_string(total) +
                       " bytes, file ends after " + std::to_string(done));
    return uint64_t(got);
  }
  bool at_end() {
    uint8_t extra;
    const int got = gzread(f_, &extra, 1);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(f_, &errnum);
      throw InputError(path_ + ": corrupt IDX file at its end: " + (msg ? msg : "gzip error"));
    }
    return got == 0;
  }

 private:
  std::string path_;
  gzFile f_;
};

uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

std::string find_split_file(const std::string& dir, const std::string& stem) {
  for (const std::string& name : {stem + ".gz", stem}) {
    const std::string p = (std::filesystem::path(dir) / name).string();
    if (std::filesystem::exists(p)) return p;
  }
  throw InputError(dir + ": no IDX file " + stem + "(.gz) in this folder");
}

const char* const kFashionNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

class IdxDataset : public Dataset {
 public:
  IdxDataset(const std::string& dir, const std::string& split) {
    if (split != "train" && split != "t10k") throw InputError("IDX split must be 'train' or 't10k', got '" + split + "'");
    images_path_ = find_split_file(dir, split + "-images-idx3-ubyte");
    labels_path_ = find_split_file(dir, split + "-labels-idx1-ubyte");
    load_images();
    load_labels();
    std::string lower = dir;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    // Fashion-MNIST and MNIST share the format; the folder name tells which class names apply.
    fashion_ = lower.find("fashion") != std::string::npos && num_classes_ <= 10;
  }

  int64_t size() const override { return count_; }
  int num_classes() const override { return num_classes_; }
  int label(int64_t i) const override {
    check(i);
    return labels_[size_t(i)];
  }
  ImageU8 load(int64_t i) const override {
    check(i);
    ImageU8 img;
    img.height = rows_;
    img.width = cols_;
    img.channels = 3;
    img.pixels.resize(img.bytes());
    const uint8_t* src = pixels_.data() + size_t(i) * size_t(rows_) * size_t(cols_);
    // Gray replicated to RGB so every source hands the trainer the same layout.
    for (size_t p = 0, n = size_t(rows_) * size_t(cols_); p < n; ++p) {
      img.pixels[3 * p] = img.pixels[3 * p + 1] = img.pixels[3 * p + 2] = src[p];
    }
    return img;
  }
  std::string describe(int64_t i) const override { return images_path_ + ":" + std::to_string(i); }
  std::vector<std::string> class_names() const override {
    std::vector<std::string> names;
    for (int c = 0; c < num_classes_; ++c) names.push_back(fashion_ ? kFashionNames[c] : std::to_string(c));
    return names;
  }

 private:
  void check(int64_t i) const {
    if (i < 0 || i >= count_) throw Error(images_path_ + ": item " + std::to_string(i) + " outside [0, " + std::to_string(count_) + ")");
  }

  void load_images() {
    GzFile f(images_path_);
    uint8_t header[16];
    f.read_exact(header, 16, "the image header");
    if (be32(header) != kImageMagic)
      throw InputError(images_path_ + ": bad IDX image magic 0x" + hex(be32(header)) + " (expected 0x00000803)");
    const uint32_t n = be32(header + 4), rows = be32(header + 8), cols = be32(header + 12);
    if (n == 0 || rows == 0 || cols == 0 || rows > 4096 || cols > 4096)
      throw InputError(images_path_ + ": implausible IDX image dimensions " + std::to_string(n) + "x" + std::to_string(rows) +
                       "x" + std::to_string(cols));
    const uint64_t bytes = uint64_t(n) * rows * cols;
    if (bytes > kMaxIdxBytes) throw InputError(images_path_ + ": IDX header claims " + std::to_string(bytes) + " bytes of pixels");
    f.read_exact(pixels_, bytes, "the pixels");
    if (!f.at_end()) throw InputError(images_path_ + ": trailing bytes after the " + std::to_string(n) + " images the header declares");
    count_ = n;
    rows_ = int(rows);
    cols_ = int(cols);
  }

  void load_labels() {
    GzFile f(labels_path_);
    uint8_t header[8];
    f.read_exact(header, 8, "the label header");
    if (be32(header) != kLabelMagic)
      throw InputError(labels_path_ + ": bad IDX label magic 0x" + hex(be32(header)) + " (expected 0x00000801)");
    const uint32_t n = be32(header + 4);
    if (int64_t(n) != count_)
      throw InputError(labels_path_ + ": " + std::to_string(n) + " labels for " + std::to_string(count_) + " images in " + images_path_);
    f.read_exact(labels_, n, "the labels");
    if (!f.at_end()) throw InputError(labels_path_ + ": trailing bytes after the " + std::to_string(n) + " labels");
    int max_label = 0;
    for (uint8_t l : labels_) max_label = std::max<int>(max_label, l);
    num_classes_ = max_label + 1;
  }

  static std::string hex(uint32_t v) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return buf;
  }

  std::string images_path_, labels_path_;
  std::vector<uint8_t> pixels_, labels_;
  int64_t count_ = 0;
  int rows_ = 0, cols_ = 0, num_classes_ = 0;
  bool fashion_ = false;
};

}  // namespace

std::unique_ptr<Dataset> open_idx_dataset(const std::string& dir, const std::string& split) {
  return std::make_unique<IdxDataset>(dir, split);
}

}  // namespace synth
