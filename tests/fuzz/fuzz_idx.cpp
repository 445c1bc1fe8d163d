// Fuzzes the IDX reader (src/data/idx_dataset.cpp: open_idx_dataset -> IdxDataset::load_images /
// load_labels through zlib's gzread, which reads gzip and plain files alike), then the accessors a
// training run uses (size, label, load, class_names).
//
// Input layout: bytes 0-1 = L, the length of the labels file (little endian, clipped to what is
// there); the next L bytes are train-labels-idx1-ubyte, the rest is train-images-idx3-ubyte. Either
// part may be gzip-compressed. The files are written to a folder named fashion-mnist (the name
// selects the Fashion-MNIST class names).
#include <algorithm>

#include "data/dataset.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t labels_len = std::min<size_t>(size_t(data[0]) | (size_t(data[1]) << 8), size - 2);
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_dir() + "/fashion-mnist";
    std::filesystem::create_directories(d);
    return d;
  }();
  fuzz::write_file(dir + "/train-labels-idx1-ubyte", data + 2, labels_len);
  fuzz::write_file(dir + "/train-images-idx3-ubyte", data + 2 + labels_len, size - 2 - labels_len);

  std::unique_ptr<synth::Dataset> ds;
  if (!fuzz::expect_ok_or_error([&] { ds = synth::open_idx_dataset(dir, "train"); })) return 0;
  fuzz::check(ds->size() > 0 && ds->num_classes() >= 1 && ds->num_classes() <= 256, "plausible dataset");
  const auto names = ds->class_names();
  fuzz::check(int64_t(names.size()) == ds->num_classes(), "one name per class");
  for (int64_t i : {int64_t(0), ds->size() / 2, ds->size() - 1}) {
    const int label = ds->label(i);
    fuzz::check(label >= 0 && label < ds->num_classes(), "label in range");
    const synth::ImageU8 img = ds->load(i);
    fuzz::check(img.channels == 3 && img.pixels.size() == img.bytes() && img.height > 0 && img.width > 0,
                "image geometry");
    (void)ds->describe(i);
  }
  // Out-of-range items are an Error, not a crash.
  fuzz::expect_ok_or_error([&] { ds->label(ds->size()); });
  fuzz::expect_ok_or_error([&] { ds->load(-1); });
  return 0;
}
