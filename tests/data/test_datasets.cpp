#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/real_source.hpp"
#include "io/image.hpp"
#include "stream/batcher.hpp"
#include "stream/ring.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kFmnist = "/usr/share/datasets/fashion-mnist";

using TempDir = synth::test::ScratchDir;

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct Item {
  uint64_t index;
  int label;
  int height, width;
  uint64_t hash;
  bool operator==(const Item& o) const {
    return index == o.index && label == o.label && height == o.height && width == o.width && hash == o.hash;
  }
};

// doctest (through glog's container printers in the torch PCH) prints mismatching vectors of Items.
std::ostream& operator<<(std::ostream& os, const Item& it) {
  return os << "{index " << it.index << ", label " << it.label << ", " << it.height << "x" << it.width << "}";
}

// Runs a RealProducer into an OrderedBatcher and returns the batches as the trainer sees them.
std::vector<std::vector<Item>> run_stream(const synth::Dataset& ds, uint64_t seed, uint64_t first, uint64_t end, int threads,
                                          int64_t batch, size_t slot_bytes, bool skip_corrupt = false,
                                          uint64_t* skipped = nullptr) {
  synth::Ring ring(size_t(batch) + 4, slot_bytes);
  synth::OrderedBatcher batcher(ring, batch, first, end);
  synth::RealProducer producer(ds, ring, seed, synth::IndexSequence::range(first, end), threads, skip_corrupt);
  producer.start();
  std::vector<std::vector<Item>> out;
  try {
    while (auto slots = batcher.next()) {
      std::vector<Item> b;
      for (int s : *slots) {
        const synth::SlotMeta& m = ring.meta(s);
        b.push_back({m.index, m.label, m.height, m.width, fnv1a(ring.data(s), size_t(m.height) * m.width * m.channels)});
        CHECK(m.source == synth::SourceTag::kReal);
        ring.release(s);
      }
      out.push_back(std::move(b));
    }
  } catch (const synth::Error&) {
    // The producer's own exception (rethrown by join) is the one the caller cares about.
    producer.join();
    throw;
  }
  producer.join();
  if (skipped) *skipped = producer.skipped();
  return out;
}

std::vector<uint8_t> gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  gzclose(f);
  return out;
}

void write_file(const std::string& path, const uint8_t* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(n));
}

synth::ImageU8 solid(int h, int w, uint8_t v) {
  synth::ImageU8 img;
  img.height = h;
  img.width = w;
  img.pixels.assign(img.bytes(), v);
  for (size_t i = 0; i < img.pixels.size(); i += 7) img.pixels[i] = uint8_t(v + i);
  return img;
}

}  // namespace

TEST_CASE("idx: Fashion-MNIST splits load with the right sizes, labels and gray->RGB pixels") {
  const auto train = synth::open_idx_dataset(kFmnist, "train");
  CHECK(train->size() == 60000);
  CHECK(train->num_classes() == 10);
  CHECK(train->class_names().at(9) == "Ankle boot");
  std::vector<int> hist(10, 0);
  for (int64_t i = 0; i < train->size(); ++i) hist[size_t(train->label(i))]++;
  for (int c = 0; c < 10; ++c) CHECK(hist[size_t(c)] == 6000);  // Fashion-MNIST is balanced
  CHECK(train->label(0) == 9);  // the first training image is an ankle boot
  const synth::ImageU8 img = train->load(0);
  CHECK(img.height == 28);
  CHECK(img.width == 28);
  CHECK(img.channels == 3);
  int nonzero = 0;
  for (size_t p = 0; p < 28 * 28; ++p) {
    CHECK(img.pixels[3 * p] == img.pixels[3 * p + 1]);
    CHECK(img.pixels[3 * p] == img.pixels[3 * p + 2]);
    nonzero += img.pixels[3 * p] != 0;
  }
  CHECK(nonzero > 100);
  CHECK(train->describe(5).find("train-images-idx3-ubyte") != std::string::npos);
  const auto test = synth::open_idx_dataset(kFmnist, "t10k");
  CHECK(test->size() == 10000);
  CHECK_THROWS_AS(synth::open_idx_dataset(kFmnist, "val"), synth::InputError);
  CHECK_THROWS_AS(synth::open_idx_dataset("/nonexistent/dir", "train"), synth::InputError);
}

TEST_CASE("idx: truncated, mismatched and corrupt files are InputErrors naming the file") {
  TempDir dir("idx");
  const auto images = gunzip(kFmnist + "/t10k-images-idx3-ubyte.gz");
  const auto labels = gunzip(kFmnist + "/t10k-labels-idx1-ubyte.gz");
  REQUIRE(images.size() == 16 + 10000 * 784);
  REQUIRE(labels.size() == 8 + 10000);
  const std::string img_path = dir.file("t10k-images-idx3-ubyte");
  const std::string lbl_path = dir.file("t10k-labels-idx1-ubyte");
  write_file(lbl_path, labels.data(), labels.size());

  write_file(img_path, images.data(), images.size() / 2);  // truncated plain file
  CHECK_THROWS_WITH_AS(synth::open_idx_dataset(dir.path.string(), "t10k"), doctest::Contains(img_path.c_str()),
                       synth::InputError);

  // A truncated gzip file (half the compressed bytes).
  std::ifstream gz(kFmnist + "/t10k-images-idx3-ubyte.gz", std::ios::binary);
  std::vector<uint8_t> compressed((std::istreambuf_iterator<char>(gz)), std::istreambuf_iterator<char>());
  fs::remove(img_path);
  const std::string gz_path = img_path + ".gz";
  write_file(gz_path, compressed.data(), compressed.size() / 2);
  CHECK_THROWS_WITH_AS(synth::open_idx_dataset(dir.path.string(), "t10k"), doctest::Contains(gz_path.c_str()),
                       synth::InputError);
  fs::remove(gz_path);

  std::vector<uint8_t> bad_magic = images;
  bad_magic[3] = 0x01;
  write_file(img_path, bad_magic.data(), bad_magic.size());
  CHECK_THROWS_WITH_AS(synth::open_idx_dataset(dir.path.string(), "t10k"), doctest::Contains("magic"), synth::InputError);

  std::vector<uint8_t> trailing = images;
  trailing.push_back(0);
  write_file(img_path, trailing.data(), trailing.size());
  CHECK_THROWS_WITH_AS(synth::open_idx_dataset(dir.path.string(), "t10k"), doctest::Contains("trailing"), synth::InputError);

  write_file(img_path, images.data(), images.size());
  std::vector<uint8_t> short_labels(labels.begin(), labels.end() - 1);
  short_labels[7] = uint8_t(0x0F);  // header says 9999 labels (0x270F)
  write_file(lbl_path, short_labels.data(), short_labels.size());
  CHECK_THROWS_WITH_AS(synth::open_idx_dataset(dir.path.string(), "t10k"), doctest::Contains("9999 labels"), synth::InputError);

  write_file(lbl_path, labels.data(), labels.size());
  CHECK(synth::open_idx_dataset(dir.path.string(), "t10k")->size() == 10000);  // the plain copy itself is fine
}

TEST_CASE("producer: 2 threads give the same batches as 1 thread, with the dataset's labels and pixels") {
  const auto ds = synth::open_idx_dataset(kFmnist, "train");
  const size_t slot = 28 * 28 * 3;
  const auto one = run_stream(*ds, 7, 0, 1000, 1, 32, slot);
  const auto two = run_stream(*ds, 7, 0, 1000, 2, 32, slot);
  REQUIRE(one.size() == 32);  // 31 full batches and a short one of 8
  CHECK(one.back().size() == 8);
  CHECK(one == two);
  const auto perm = synth::epoch_permutation(7, 0, ds->size());
  uint64_t expect = 0;
  for (const auto& batch : one)
    for (const Item& it : batch) {
      REQUIRE(it.index == expect);
      const int64_t item = perm[size_t(expect)];
      CHECK(it.label == ds->label(item));
      const synth::ImageU8 img = ds->load(item);
      CHECK(it.hash == fnv1a(img.pixels.data(), img.bytes()));
      ++expect;
    }
  // A different seed gives a different order; resuming mid-stream gives the same items.
  const auto other = run_stream(*ds, 8, 0, 1000, 2, 32, slot);
  CHECK_FALSE(other == one);
  const auto resumed = run_stream(*ds, 7, 500, 1000, 2, 50, slot);
  std::vector<Item> flat_one, flat_resumed;
  for (const auto& b : one) flat_one.insert(flat_one.end(), b.begin(), b.end());
  for (const auto& b : resumed) flat_resumed.insert(flat_resumed.end(), b.begin(), b.end());
  CHECK(std::equal(flat_resumed.begin(), flat_resumed.end(), flat_one.begin() + 500, flat_one.end()));
}

TEST_CASE("producer: epoch 2 is a different permutation of the same items") {
  const auto ds = synth::open_idx_dataset(kFmnist, "t10k");
  const int64_t n = ds->size();
  const auto p0 = synth::epoch_permutation(3, 0, n), p1 = synth::epoch_permutation(3, 1, n);
  std::vector<int64_t> s0 = p0, s1 = p1, iota(static_cast<size_t>(n));
  std::iota(iota.begin(), iota.end(), 0);
  std::sort(s0.begin(), s0.end());
  std::sort(s1.begin(), s1.end());
  CHECK(s0 == iota);
  CHECK(s1 == iota);
  CHECK(p0 != p1);
  CHECK(p0 == synth::epoch_permutation(3, 0, n));

  const auto batches = run_stream(*ds, 3, 0, uint64_t(2 * n), 2, 100, 28 * 28 * 3);
  std::vector<std::map<uint64_t, int>> seen(2);  // per epoch: pixel hash -> count
  std::vector<std::vector<int>> labels(2);
  for (const auto& b : batches)
    for (const Item& it : b) {
      const size_t e = size_t(it.index / uint64_t(n));
      seen[e][it.hash]++;
      labels[e].push_back(it.label);
    }
  CHECK(labels[0].size() == size_t(n));
  CHECK(labels[1].size() == size_t(n));
  CHECK(seen[0] == seen[1]);        // same multiset of images
  CHECK(labels[0] != labels[1]);    // in a different order
  std::vector<int> l0 = labels[0], l1 = labels[1];
  std::sort(l0.begin(), l0.end());
  std::sort(l1.begin(), l1.end());
  CHECK(l0 == l1);
  // Spot-check the epoch-1 mapping: index n + p carries item p1[p].
  for (int64_t p : {0, 17, 4321, 9999}) CHECK(labels[1][size_t(p)] == ds->label(p1[size_t(p)]));
}

TEST_CASE("image folder: labels from the class list, sorted files, case-insensitive extensions") {
  TempDir dir("folder");
  fs::create_directories(dir.path / "n002");
  fs::create_directories(dir.path / "n001" / "sub");
  synth::write_png(dir.file("n001/b.png"), solid(4, 5, 10));
  synth::write_png(dir.file("n001/a.PNG"), solid(4, 5, 20));
  synth::write_png(dir.file("n001/sub/c.png"), solid(4, 5, 30));
  synth::write_png(dir.file("n002/z.png"), solid(6, 3, 40));
  write_file(dir.file("n002/readme.txt"), reinterpret_cast<const uint8_t*>("hi"), 2);

  const auto sorted = synth::open_image_folder(dir.path.string());
  REQUIRE(sorted->size() == 4);
  CHECK(sorted->num_classes() == 2);
  CHECK(sorted->class_names() == std::vector<std::string>{"n001", "n002"});
  CHECK(sorted->describe(0).find("n001/a.PNG") != std::string::npos);
  CHECK(sorted->describe(1).find("n001/b.png") != std::string::npos);
  CHECK(sorted->describe(2).find("n001/sub/c.png") != std::string::npos);
  CHECK(sorted->label(0) == 0);
  CHECK(sorted->label(3) == 1);
  CHECK(sorted->load(3).height == 6);
  CHECK(sorted->load(0).pixels == solid(4, 5, 20).pixels);

  const auto listed = synth::open_image_folder(dir.path.string(), {"n000", "n002", "n001"});
  CHECK(listed->num_classes() == 3);
  CHECK(listed->label(0) == 2);
  CHECK(listed->label(3) == 1);

  CHECK_THROWS_WITH_AS(synth::open_image_folder(dir.path.string(), {"n001"}), doctest::Contains("n002"), synth::InputError);
  CHECK_THROWS_AS(synth::open_image_folder(dir.file("missing")), synth::InputError);
}

TEST_CASE("image folder + producer: a corrupt JPEG stops the stream by default, is skipped and counted with skip_corrupt") {
  TempDir dir("corrupt");
  fs::create_directories(dir.path / "cat");
  fs::create_directories(dir.path / "dog");
  for (int i = 0; i < 6; ++i) synth::write_png(dir.file((i < 3 ? "cat/" : "dog/") + std::to_string(i) + ".png"), solid(8, 8, uint8_t(i * 30)));
  const std::string bad = dir.file("dog/bad.jpg");
  const uint8_t junk[] = {0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  write_file(bad, junk, sizeof junk);
  const auto ds = synth::open_image_folder(dir.path.string());
  REQUIRE(ds->size() == 7);

  CHECK_THROWS_WITH_AS(run_stream(*ds, 1, 0, 14, 2, 4, 8 * 8 * 3), doctest::Contains(bad.c_str()), synth::InputError);

  uint64_t skipped = 0;
  const auto batches = run_stream(*ds, 1, 0, 14, 2, 4, 8 * 8 * 3, true, &skipped);
  CHECK(skipped == 2);  // once per epoch
  size_t total = 0;
  for (const auto& b : batches) total += b.size();
  CHECK(total == 14);
  // The substitution is deterministic: a second run gives identical batches.
  uint64_t skipped2 = 0;
  CHECK(run_stream(*ds, 1, 0, 14, 1, 4, 8 * 8 * 3, true, &skipped2) == batches);
  CHECK(skipped2 == 2);

  // An image larger than a slot names the ring settings to raise.
  CHECK_THROWS_WITH_AS(run_stream(*ds, 1, 0, 7, 2, 4, 8 * 8 * 2, true), doctest::Contains("ring.max_height"), synth::InputError);
}
