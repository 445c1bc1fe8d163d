// Top-1/top-5 counting by hand, the evaluator over real Fashion-MNIST test images with classifiers
// whose accuracy is known from the labels alone, and over JPEG class-folder trees (several sets,
// layouts, restriction to the classes present, skips) against an independent computation.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "augment/simple_augment.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "eval/evaluator.hpp"
#include "io/image.hpp"
#include "support/jpeg_tree.hpp"
#include "support/scratch_dir.hpp"
#include "support/input_error.hpp"

TEST_CASE("topk_correct counts top-1 and top-5 hits") {
  // 3 samples x 6 classes; ranks of the true class: 1st, 3rd, 6th.
  const torch::Tensor logits = torch::tensor({0.9f, 0.1f, 0.0f, 0.0f, 0.0f, 0.0f,   //
                                              0.5f, 0.4f, 0.3f, 0.2f, 0.1f, 0.0f,   //
                                              0.6f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f})
                                   .view({3, 6});
  const auto hits = synth::topk_correct(logits, torch::tensor({0, 2, 5}, torch::kInt64));
  CHECK(hits.first == 1);
  CHECK(hits.second == 2);
  // Fewer than 5 classes: top-5 is every prediction.
  CHECK(synth::topk_correct(torch::rand({4, 3}), torch::tensor({0, 1, 2, 0}, torch::kInt64)).second == 4);
}

TEST_CASE("evaluator on Fashion-MNIST t10k: a constant classifier scores the label frequencies") {
  synth::Config c;
  c.eval.source = "fmnist";
  c.eval.path = "/usr/share/datasets/fashion-mnist";
  c.eval.limit = 1000;
  c.eval.batch_size = 300;  // uneven last batch
  c.eval.resize = c.eval.crop = 28;
  c.model.num_classes = 10;
  synth::Evaluator eval(c);
  CHECK(eval.size() == 1000);
  const auto data = synth::open_eval_dataset(c);
  int64_t label3 = 0, top5 = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    label3 += data->label(i) == 3;
    top5 += data->label(i) >= 3 && data->label(i) <= 7;
  }
  int64_t seen = 0;
  const auto r = eval([&](const torch::Tensor& x) {
    CHECK(x.size(1) == 3);
    CHECK(x.size(2) == 28);
    seen += x.size(0);
    // Scores ranking 3 > 4 > 5 > 6 > 7 > others.
    torch::Tensor s = torch::zeros({x.size(0), 10});
    for (int k = 3; k <= 7; ++k) s.select(1, k).fill_(10.0 - k);
    return s;
  });
  CHECK(seen == 1000);
  REQUIRE(r.size() == 1);
  CHECK(r[0].set == "fmnist-t10k");
  CHECK(r[0].images == 1000);
  CHECK(r[0].top1 == doctest::Approx(label3 / 1000.0));
  CHECK(r[0].top5 == doctest::Approx(top5 / 1000.0));
  CHECK(label3 > 50);  // the check above is not vacuous

  c.model.num_classes = 4;  // labels up to 9 do not fit
  CHECK_THROWS_WITH_AS(synth::Evaluator{c}, doctest::Contains("model.num_classes = 4"), synth::InputError);
  c.eval.source = "none";
  CHECK_THROWS_AS(synth::Evaluator{c}, synth::InputError);
}

namespace {

namespace fs = std::filesystem;

// Nearest palette colour of each image's mean (in normalized space), plus a per-class bias.
// Rows are independent, so the batch an image lands in cannot change its logits.
struct ColourClassifier {
  torch::Tensor palette, bias;  // 8 x 3, 8
  ColourClassifier(const synth::Config& c, torch::Tensor class_bias) : bias(std::move(class_bias)) {
    palette = torch::empty({8, 3});
    for (int k = 0; k < 8; ++k)
      for (int ch = 0; ch < 3; ++ch)
        palette[k][ch] = (synth::test::kPalette[size_t(k)][size_t(ch)] / 255.0 - c.augment.mean[size_t(ch)]) /
                         c.augment.std[size_t(ch)];
  }
  torch::Tensor operator()(const torch::Tensor& x) const {
    const torch::Tensor m = x.mean({2, 3});
    return -(m.unsqueeze(1) - palette.unsqueeze(0)).pow(2).sum(2) + bias;
  }
};

using synth::test::Hits;
using synth::test::Item;

// What an evaluation must report, computed without decoding or preprocessing anything: every image
// is its palette colour plus zero-mean noise, and ColourClassifier looks only at the mean colour of
// the crop, so each image is replaced by its noise-free colour, normalized. The palette has no near
// ties, so JPEG rounding and the noise cannot change a rank.
Hits expected_hits(const synth::Config& c, const std::vector<Item>& items, const ColourClassifier& classify,
                   const std::vector<int64_t>& scored = {}) {
  std::vector<torch::Tensor> images;
  for (const Item& it : items) {
    REQUIRE(it.colour >= 0);
    torch::Tensor px = torch::empty({3, 1, 1});
    for (int ch = 0; ch < 3; ++ch)
      px[ch] = (synth::test::kPalette[size_t(it.colour)][size_t(ch)] / 255.0 - c.augment.mean[size_t(ch)]) /
               c.augment.std[size_t(ch)];
    images.push_back(px.expand({3, c.eval.crop, c.eval.crop}));
  }
  return synth::test::rank_hits(items, classify(torch::stack(images)), scored);
}

void check_report(const synth::EvalSetReport& r, const Hits& h) {
  INFO("set " << r.result.set);
  CHECK(r.result.images == h.images);
  CHECK(r.result.top1_hits == h.top1);
  CHECK(r.result.top5_hits == h.top5);
  CHECK(r.result.top1 == doctest::Approx(double(h.top1) / double(h.images)));
  CHECK(r.result.top5 == doctest::Approx(double(h.top5) / double(h.images)));
}

// Eight classes n00000000..n00000007; three trees of JPEG files:
//   full  every class, images of colours {c, c, c+3}
//   part  classes 1, 4, 6 only (ImageNet-R style), colours {c, c+1, c}
//   v2    folders "0".."7" by index into rev.txt (the ids in reverse), colours {c, c+5}
struct Trees {
  synth::test::ScratchDir dir{"eval_trees"};
  std::vector<std::string> ids;
  std::vector<Item> full, part, v2;
  fs::path class_file, rev;
  Trees() {
    class_file = dir.path / "classes.tsv";
    ids = synth::test::write_class_file(class_file, 8);
    for (int c = 0; c < 8; ++c)
      for (const Item& it : synth::test::write_items(dir.path / "full", ids[size_t(c)], c, {c, c, (c + 3) % 8}, 100 + 10 * c))
        full.push_back(it);
    for (int c : {1, 4, 6})
      for (const Item& it : synth::test::write_items(dir.path / "part", ids[size_t(c)], c, {c, (c + 1) % 8, c}, 200 + 10 * c))
        part.push_back(it);
    rev = dir.path / "rev.txt";
    std::ofstream out(rev);
    for (int k = 7; k >= 0; --k) out << ids[size_t(k)] << "\n";
    for (int k = 0; k < 8; ++k) {
      const int c = 7 - k;
      for (const Item& it : synth::test::write_items(dir.path / "v2", std::to_string(k), c, {c, (c + 5) % 8}, 300 + 10 * k))
        v2.push_back(it);
    }
  }
  std::string path(const std::string& tree) const { return (dir.path / tree).string(); }
  synth::Config config() const {
    synth::Config c;
    c.data.class_file = class_file.string();
    c.model.num_classes = 8;
    c.eval.source = "none";
    c.eval.resize = 32;
    c.eval.crop = 24;
    c.eval.batch_size = 5;  // uneven batches
    c.eval.decode_threads = 3;
    return c;
  }
};

using synth::test::input_error;

}  // namespace

TEST_CASE("evaluator: eval.cache_mb bounds the images kept between evaluations; the results do not depend on it") {
  const Trees t;
  synth::Config c = t.config();
  c.eval.sets = {"full=" + t.path("full"), "part=" + t.path("part") + ",classes=present",
                 "part-all=" + t.path("part") + ",classes=partial", "v2=" + t.path("v2") + ",layout=index,index_ids=" + t.rev.string()};
  c.eval.resize = c.eval.crop = 128;  // 3 x 128 x 128 floats + a target: 196,616 bytes an image
  const int64_t per_image = 3 * 128 * 128 * 4 + 8;
  const ColourClassifier neutral(c, torch::zeros({8}));
  std::vector<std::vector<int64_t>> hits;
  for (const int64_t cache_mb : {int64_t(0), int64_t(4), int64_t(1024)}) {
    CAPTURE(cache_mb);
    c.eval.cache_mb = cache_mb;
    const synth::Evaluator eval(c);
    CHECK(eval.cached_bytes() <= cache_mb << 20);
    // Sets in order, each that still fits: 0 MiB none; 4 MiB skips full (24 images, 4.5 MiB) and
    // keeps part and part-all (9 + 9 images, 3.4 MiB), not v2 (16 more); 1024 MiB all.
    const int64_t kept = cache_mb == 0 ? 0 : cache_mb == 4 ? 18 : int64_t(t.full.size() + 2 * t.part.size() + t.v2.size());
    CHECK(eval.cached_bytes() == kept * per_image);
    std::vector<int64_t> h;
    for (const auto& r : eval.evaluate(neutral)) h.push_back(r.result.top1_hits);
    hits.push_back(h);
  }
  CHECK(hits[1] == hits[0]);
  CHECK(hits[2] == hits[0]);
}

TEST_CASE("evaluator on JPEG trees: top-1/top-5 equal an independent computation, one row per set") {
  const Trees t;
  synth::Config c = t.config();
  c.eval.sets = {"full=" + t.path("full"), "part=" + t.path("part") + ",classes=present",
                 "part-all=" + t.path("part") + ",classes=partial",
                 "v2=" + t.path("v2") + ",layout=index,index_ids=" + t.rev.string()};
  const std::vector<int64_t> present = {1, 4, 6};
  for (const int64_t cache_mb : {int64_t(1024), int64_t(0)}) {  // decoded once, or at every call
    CAPTURE(cache_mb);
    c.eval.cache_mb = cache_mb;
    const synth::Evaluator eval(c);
    CHECK(eval.set_count() == 4);
    CHECK(eval.size() == int64_t(t.full.size() + 2 * t.part.size() + t.v2.size()));

    const ColourClassifier neutral(c, torch::zeros({8}));
    const auto r = eval.evaluate(neutral);
    REQUIRE(r.size() == 4);
    CHECK(r[0].result.set == "full");
    CHECK(r[1].result.set == "part");
    CHECK(r[2].result.set == "part-all");
    CHECK(r[3].result.set == "v2");
    CHECK(r[0].classes == 8);
    CHECK(r[1].classes == 3);
    check_report(r[0], expected_hits(c, t.full, neutral));
    check_report(r[1], expected_hits(c, t.part, neutral, present));
    check_report(r[2], expected_hits(c, t.part, neutral));
    check_report(r[3], expected_hits(c, t.v2, neutral));
    // The nearest colour is right for the images painted in their class's colour.
    CHECK(r[0].result.top1_hits == 16);
    CHECK(r[3].result.top1_hits == 8);

    // Class 0 (absent from part) outranks everything: ranking all logits never gets a part image
    // right, ranking only the classes present does.
    torch::Tensor bias = torch::zeros({8});
    bias[0] = 1000;
    const ColourClassifier biased(c, bias);
    const auto b = eval.evaluate(biased);
    check_report(b[1], expected_hits(c, t.part, biased, present));
    check_report(b[2], expected_hits(c, t.part, biased));
    CHECK(b[2].result.top1_hits == 0);
    CHECK(b[1].result.top1_hits == 6);
    CHECK(b[1].result.top1_hits == r[1].result.top1_hits);  // restricted: the bias of an absent class is irrelevant

    const auto plain = eval(neutral);  // the trainer's interface
    REQUIRE(plain.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
      CHECK(plain[i].set == r[i].result.set);
      CHECK(plain[i].top1 == r[i].result.top1);
      CHECK(plain[i].top5 == r[i].result.top5);
    }
  }
}

TEST_CASE("evaluator: the eval.source set comes first; limits; no set at all is an InputError") {
  const Trees t;
  synth::Config c = t.config();
  c.eval.source = "image_folder";
  c.eval.path = t.path("full");
  c.eval.limit = 7;
  c.eval.sets = {"v2=" + t.path("v2") + ",layout=index,index_ids=" + t.rev.string() + ",limit=3"};
  const ColourClassifier neutral(c, torch::zeros({8}));
  const auto r = synth::Evaluator(c).evaluate(neutral);
  REQUIRE(r.size() == 2);
  CHECK(r[0].result.set == "full");
  check_report(r[0], expected_hits(c, std::vector<Item>(t.full.begin(), t.full.begin() + 7), neutral));
  check_report(r[1], expected_hits(c, std::vector<Item>(t.v2.begin(), t.v2.begin() + 3), neutral));

  c.eval.source = "none";
  c.eval.sets.clear();
  CHECK(input_error([&] { synth::Evaluator{c}; }).find("eval.sets is empty") != std::string::npos);
}

TEST_CASE("evaluator: folders that do not fit the class file are InputErrors naming them, or counted skips") {
  const Trees t;
  synth::Config c = t.config();
  const fs::path root = t.dir.path / "unk";
  std::vector<Item> known;
  for (int k : {0, 1})
    for (const Item& it : synth::test::write_items(root, t.ids[size_t(k)], k, {k}, 400 + k)) known.push_back(it);
  synth::test::write_class_folder(root, "n99999999", {2, 3}, 410);

  c.eval.sets = {"unk=" + root.string() + ",classes=partial"};
  std::string e = input_error([&] { synth::Evaluator{c}; });
  CHECK(e.find((root / "n99999999").string() + ": class folder 'n99999999' is not a class of " + t.class_file.string()) !=
        std::string::npos);
  CHECK(e.find("unknown=skip") != std::string::npos);

  c.eval.sets = {"unk=" + root.string() + ",classes=partial,unknown=skip"};
  const ColourClassifier neutral(c, torch::zeros({8}));
  const auto r = synth::Evaluator(c).evaluate(neutral);
  REQUIRE(r.size() == 1);
  CHECK(r[0].unknown_folders == 1);
  CHECK(r[0].unknown_images == 2);
  CHECK(r[0].result.skipped == 2);
  check_report(r[0], expected_hits(c, known, neutral));

  // A complete set (the default) must have every class of the class file.
  c.eval.sets = {"part=" + t.path("part")};
  e = input_error([&] { synth::Evaluator{c}; });
  CHECK(e.find((t.dir.path / "part" / "n00000000").string() + ": no folder for class n00000000 of " +
               t.class_file.string() + " (5 of 8 classes missing)") != std::string::npos);
  CHECK(e.find("classes=partial or classes=present") != std::string::npos);
  // ... also by index: the missing class's folder name is its position in the index list.
  const fs::path v2 = t.dir.path / "v2-missing";
  synth::test::write_class_folder(v2, "0", {7}, 500);
  c.eval.sets = {"v2=" + v2.string() + ",layout=index"};
  CHECK(input_error([&] { synth::Evaluator{c}; }).find((v2 / "1").string() + ": no folder for class n00000001") !=
        std::string::npos);

  // Index folders: not a number, out of range, or two names for one class.
  for (const std::string& bad : {"x", "8", "-1"}) {
    const fs::path idx = t.dir.path / ("idx-" + bad);
    synth::test::write_class_folder(idx, bad, {0}, 600);
    c.eval.sets = {"idx=" + idx.string() + ",layout=index,classes=partial"};
    CHECK(input_error([&] { synth::Evaluator{c}; }).find((idx / bad).string() + ": folder name '" + bad +
                                                           "' is not a class index (0..7, positions in " +
                                                           t.class_file.string() + ")") != std::string::npos);
  }
  const fs::path dup = t.dir.path / "dup";
  synth::test::write_class_folder(dup, "1", {1}, 700);
  synth::test::write_class_folder(dup, "01", {1}, 701);
  c.eval.sets = {"dup=" + dup.string() + ",layout=index,classes=partial"};
  CHECK(input_error([&] { synth::Evaluator{c}; }).find("folders '01' and '1' both name class n00000001") != std::string::npos);

  // Labels beyond the model's outputs, and ids without a class file.
  c.eval.sets = {"full=" + t.path("full")};
  c.model.num_classes = 4;
  CHECK(input_error([&] { synth::Evaluator{c}; }).find("outside model.num_classes = 4") != std::string::npos);
  c.model.num_classes = 8;
  c.data.class_file = "";
  CHECK(input_error([&] { synth::Evaluator{c}; }).find("need a class file") != std::string::npos);
  c.eval.sets = {"full=" + t.path("full") + ",layout=sorted"};  // sorted folder names need none
  const auto sorted = synth::Evaluator(c).evaluate(neutral);
  check_report(sorted[0], expected_hits(c, t.full, neutral));
}

TEST_CASE("evaluator: an unreadable image is an InputError naming it, or a counted skip") {
  const Trees t;
  synth::Config c = t.config();
  const fs::path root = t.dir.path / "bad";
  std::vector<Item> good;
  for (const Item& it : synth::test::write_items(root, t.ids[2], 2, {2, 2}, 800)) good.push_back(it);
  const std::string broken = (root / t.ids[5] / "broken.jpg").string();  // sorts before img0.jpg
  for (const Item& it : synth::test::write_items(root, t.ids[5], 5, {5}, 810)) good.push_back(it);
  std::ofstream(broken) << "\xff\xd8\xff\xe0 not really a JPEG";
  c.eval.sets = {"bad=" + root.string() + ",classes=partial"};
  const ColourClassifier neutral(c, torch::zeros({8}));

  for (const int64_t cache_mb : {int64_t(1024), int64_t(0)}) {
    CAPTURE(cache_mb);
    c.eval.cache_mb = cache_mb;
    c.eval.on_corrupt = "error";
    std::string e;
    if (cache_mb > 0) {
      e = input_error([&] { synth::Evaluator{c}; });  // cached sets are decoded up front
    } else {
      const synth::Evaluator eval(c);
      e = input_error([&] { eval.evaluate(neutral); });
    }
    CHECK(e.find(broken + ": corrupt JPEG") != std::string::npos);

    c.eval.on_corrupt = "skip";
    const synth::Evaluator eval(c);
    for (int round = 0; round < 2; ++round) {  // a cached set reports its skips at every call
      const auto r = eval.evaluate(neutral);
      REQUIRE(r.size() == 1);
      CHECK(r[0].corrupt == 1);
      CHECK(r[0].result.skipped == 1);
      REQUIRE(r[0].corrupt_examples.size() == 1);
      CHECK(r[0].corrupt_examples[0].find(broken) == 0);
      check_report(r[0], expected_hits(c, good, neutral));
    }
  }
}

TEST_CASE("evaluator shards: the counts of every rank's share sum to the one-rank counts, skips counted once") {
  const Trees t;
  synth::Config c = t.config();
  const fs::path unk = t.dir.path / "unk-shard";
  for (int k : {0, 3}) synth::test::write_class_folder(unk, t.ids[size_t(k)], {k, k + 1, k}, 900 + k);
  synth::test::write_class_folder(unk, "n99999999", {2, 3, 4}, 910);
  std::ofstream((unk / t.ids[3] / "broken.jpg").string()) << "\xff\xd8\xff\xe0 not really a JPEG";
  c.eval.on_corrupt = "skip";
  c.eval.sets = {"full=" + t.path("full"), "part=" + t.path("part") + ",classes=present",
                 "v2=" + t.path("v2") + ",layout=index,index_ids=" + t.rev.string(),
                 "unk=" + unk.string() + ",classes=partial,unknown=skip"};
  const ColourClassifier neutral(c, torch::zeros({8}));
  const auto whole = synth::Evaluator(c).evaluate(neutral);
  REQUIRE(whole.size() == 4);
  CHECK(whole[3].corrupt == 1);
  CHECK(whole[3].unknown_images == 3);
  for (const int64_t cache_mb : {int64_t(1024), int64_t(0)}) {
    CAPTURE(cache_mb);
    c.eval.cache_mb = cache_mb;
    for (const int count : {2, 3, 7}) {  // 7: more ranks than some sets have images per shard
      CAPTURE(count);
      std::vector<synth::EvalResult> sum(whole.size());
      int64_t size = 0, corrupt = 0, unknown = 0;
      for (int index = 0; index < count; ++index) {
        const synth::Evaluator eval(c, synth::EvalShard{index, count});
        size += eval.size();
        int64_t seen = 0;
        const auto r = eval.evaluate([&](const torch::Tensor& x) {
          seen += x.size(0);
          return neutral(x);
        });
        REQUIRE(r.size() == whole.size());
        for (size_t s = 0; s < r.size(); ++s) {
          CHECK(r[s].result.set == whole[s].result.set);
          sum[s].images += r[s].result.images;
          sum[s].top1_hits += r[s].result.top1_hits;
          sum[s].top5_hits += r[s].result.top5_hits;
          sum[s].skipped += r[s].result.skipped;
          seen -= r[s].result.images;
        }
        CHECK(seen == 0);  // the classifier saw this shard's readable images, no others
        corrupt += r[3].corrupt;
        unknown += r[3].unknown_images;
        if (index > 0) CHECK(r[3].unknown_folders == 0);
      }
      CHECK(size == synth::Evaluator(c).size());
      CHECK(corrupt == 1);
      CHECK(unknown == 3);
      for (size_t s = 0; s < whole.size(); ++s) {
        CAPTURE(whole[s].result.set);
        CHECK(sum[s].images == whole[s].result.images);
        CHECK(sum[s].top1_hits == whole[s].result.top1_hits);
        CHECK(sum[s].top5_hits == whole[s].result.top5_hits);
        CHECK(sum[s].skipped == whole[s].result.skipped);
      }
    }
  }
  CHECK(input_error([&] { synth::Evaluator(c, synth::EvalShard{2, 2}); }).find("shard 2 of 2 does not exist") !=
        std::string::npos);
}
