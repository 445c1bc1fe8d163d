// Class-folder trees of small real JPEG files for the evaluation tests: image "colour k" is colour
// k of a fixed palette plus a little noise, so a nearest-colour classifier has a known answer and
// a test can put a different colour into a class folder to make a known mistake. expected_hits is
// the tests' own top-1/top-5 count to compare the evaluator with.
#pragma once
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "augment/simple_augment.hpp"
#include "core/rng.hpp"
#include "io/image.hpp"

namespace synth::test {

// Irregular colours, so no two distances between them tie (ranks never depend on rounding).
inline constexpr std::array<std::array<int, 3>, 8> kPalette = {{{220, 40, 35},
                                                               {45, 200, 60},
                                                               {30, 70, 210},
                                                               {235, 220, 50},
                                                               {180, 60, 190},
                                                               {60, 190, 200},
                                                               {245, 245, 240},
                                                               {25, 20, 30}}};

inline ImageU8 colour_image(int colour, int height, int width, uint64_t seed) {
  ImageU8 img;
  img.height = height;
  img.width = width;
  img.pixels.resize(img.bytes());
  CounterRng rng(seed, uint64_t(colour), RngPurpose::kNoise);
  for (size_t p = 0; p < size_t(height) * width; ++p)
    for (int c = 0; c < 3; ++c) {
      const int v = kPalette[size_t(colour)][size_t(c)] + int(rng.uniform(-12.f, 12.f));
      img.pixels[p * 3 + c] = uint8_t(std::min(255, std::max(0, v)));
    }
  return img;
}

// Writes root/folder/img<i>.jpg, one per entry of `colours`, landscape and portrait in turn (so
// both resize branches run). Returns the paths in the sorted order an evaluator lists them.
inline std::vector<std::string> write_class_folder(const std::filesystem::path& root, const std::string& folder,
                                                   const std::vector<int>& colours, uint64_t seed) {
  std::filesystem::create_directories(root / folder);
  std::vector<std::string> files;
  for (size_t i = 0; i < colours.size(); ++i) {
    const bool wide = i % 2 == 0;
    const std::string path = (root / folder / ("img" + std::to_string(i) + ".jpg")).string();
    write_jpeg(path, colour_image(colours[i], wide ? 30 : 44, wide ? 41 : 33, seed + i), 90);
    files.push_back(path);
  }
  return files;
}

// A class file of n classes with ids n00000000, n00000001, ... (rows = logits).
inline std::vector<std::string> write_class_file(const std::filesystem::path& path, int n) {
  std::ofstream out(path);
  out << "id\tname\n";
  std::vector<std::string> ids;
  for (int k = 0; k < n; ++k) {
    char id[16];
    std::snprintf(id, sizeof id, "n%08d", k);
    ids.push_back(id);
    out << ids.back() << "\tclass " << k << "\n";
  }
  return ids;
}

// An image of a tree and its class (logit row).
struct Item {
  std::string file;
  int label;
  int colour = -1;  // palette entry it was painted in (write_items), -1 when not recorded
};

// write_class_folder for one class: the files as Items of class `label`, each with its colour.
inline std::vector<Item> write_items(const std::filesystem::path& root, const std::string& folder, int label,
                                     const std::vector<int>& colours, uint64_t seed) {
  std::vector<Item> items;
  const std::vector<std::string> files = write_class_folder(root, folder, colours, seed);
  for (size_t i = 0; i < files.size(); ++i) items.push_back({files[i], label, colours[i]});
  return items;
}

struct Hits {
  int64_t images = 0, top1 = 0, top5 = 0;
};

// Top-1/top-5 hits of `logits` (one row per item) for the items' classes, ranked among the scored
// logits (all logits when `scored` is empty).
inline Hits rank_hits(const std::vector<Item>& items, const torch::Tensor& logits, const std::vector<int64_t>& scored) {
  Hits h;
  for (size_t i = 0; i < items.size(); ++i) {
    torch::Tensor row = logits[int64_t(i)];
    int64_t target = items[i].label;
    if (!scored.empty()) {
      row = row.index_select(0, torch::tensor(scored, torch::kInt64));
      target = std::find(scored.begin(), scored.end(), target) - scored.begin();
    }
    const int64_t rank = (row > row[target]).sum().item<int64_t>();
    ++h.images;
    h.top1 += rank == 0;
    h.top5 += rank < 5;
  }
  return h;
}

// What stream-eval must report, computed in-process (the CLI tests compare the program with the
// library): decode each file, preprocess it with eval_preprocess, run `classify` on all of them
// as one batch, then rank_hits.
template <class Classify>
Hits expected_hits(const std::vector<Item>& items, Classify&& classify, int resize, int crop,
                   const std::vector<double>& mean, const std::vector<double>& std,
                   const std::vector<int64_t>& scored = {}) {
  std::vector<torch::Tensor> images;
  for (const Item& it : items) {
    const ImageU8 img = decode_image_file(it.file);
    const ImageView v{img.pixels.data(), img.height, img.width, img.channels, 0};
    images.push_back(eval_preprocess(v, resize, crop, mean, std));
  }
  return rank_hits(items, classify(torch::stack(images)), scored);
}

}  // namespace synth::test
