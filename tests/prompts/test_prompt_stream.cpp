// Templates exactly as the paper writes them, and the prompt stream as a pure function of
// (seed, index): rank-partition invariance, exact class balance per block, mixture frequencies.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "prompts/prompt_stream.hpp"
#include "support/scratch_dir.hpp"
#include "support/input_error.hpp"

namespace fs = std::filesystem;
using synth::ClassInfo;
using synth::PromptEntry;
using synth::PromptStream;
using synth::PromptTemplate;

namespace {

const std::string kRoot = SYNTH_SOURCE_DIR;

using synth::test::input_error;

std::vector<PromptTemplate> all_templates() {
  const auto a = synth::all_prompt_templates();
  return {a.begin(), a.end()};
}

PromptStream imagenet100_stream(uint64_t seed, std::vector<double> weights = {}, int64_t k = 1) {
  return PromptStream(seed, synth::load_class_file(kRoot + "/configs/classes/imagenet100.tsv"), all_templates(),
                      std::move(weights), synth::load_scenes(kRoot + "/configs/data/places365_categories.txt"), k);
}

bool same(const PromptEntry& a, const PromptEntry& b) {
  return a.index == b.index && a.class_index == b.class_index && a.prompt_template == b.prompt_template &&
         a.scene == b.scene && a.noise_seed == b.noise_seed && a.prompt == b.prompt;
}

}  // namespace

TEST_CASE("the six templates, exactly as in the paper") {
  const ClassInfo papillon{"n02086910", "papillon", "toy spaniel",
                           "small slender toy spaniel with erect ears and a black-spotted brown to white coat"};
  using T = PromptTemplate;
  CHECK(synth::render_prompt(T::kC, papillon) == "papillon");
  CHECK(synth::render_prompt(T::kCHc, papillon) == "papillon, toy spaniel");
  CHECK(synth::render_prompt(T::kCDc, papillon) ==
        "papillon, small slender toy spaniel with erect ears and a black-spotted brown to white coat");
  CHECK(synth::render_prompt(T::kMultipleCHc, papillon) == "a photo of multiple papillon, toy spaniel");
  CHECK(synth::render_prompt(T::kMultipleDifferentCHc, papillon) == "a photo of multiple different papillon, toy spaniel");
  CHECK(synth::render_prompt(T::kCHcInsideB, papillon, "bamboo forest") == "papillon, toy spaniel inside bamboo forest");
  for (T t : synth::all_prompt_templates()) CHECK(synth::parse_template_name(synth::template_name(t)) == t);
  CHECK(input_error([] { synth::parse_template_name("c_hc_b"); }).find("unknown prompt template 'c_hc_b' (valid: c, c_hc,") == 0);
  const ClassInfo bare{"", "red panda", "", ""};
  CHECK(synth::render_prompt(T::kC, bare) == "red panda");
  CHECK(input_error([&] { synth::render_prompt(T::kCHc, bare); }) ==
        "prompt template c_hc needs hypernyms, class 'red panda' has none");
  CHECK(input_error([&] { synth::render_prompt(T::kCDc, bare); }).find("needs a definition") != std::string::npos);
}

TEST_CASE("Places365 scenes made readable") {
  CHECK(synth::readable_scene("/a/arena/hockey") == "arena hockey");
  CHECK(synth::readable_scene("/a/arena/hockey 8") == "arena hockey");
  CHECK(synth::readable_scene("/b/bamboo_forest") == "bamboo forest");
  CHECK(synth::readable_scene("/a/airfield") == "airfield");
  const auto scenes = synth::load_scenes(kRoot + "/configs/data/places365_categories.txt");
  REQUIRE(scenes.size() == 365);
  CHECK(scenes[0] == "airfield");
  for (const auto& s : scenes) {
    CHECK(s.find_first_of("/_") == std::string::npos);
    CHECK(!s.empty());
  }
}

TEST_CASE("the stream is the same however indices are split over ranks") {
  const uint64_t n = 3000;
  const auto reference = imagenet100_stream(7, {}, 2).range(0, n);
  REQUIRE(reference.size() == n);
  for (uint64_t i = 0; i < n; ++i) CHECK(reference[i].index == i);
  for (int ranks : {1, 2, 3, 8}) {
    for (int scheme = 0; scheme < 3; ++scheme) {
      // Round-robin, contiguous chunks, or a random assignment; every rank walks its own indices
      // backwards with its own stream object.
      std::vector<std::vector<uint64_t>> owned{size_t(ranks)};
      for (uint64_t i = 0; i < n; ++i) {
        int r = scheme == 0 ? int(i % uint64_t(ranks))
                : scheme == 1 ? int(i * uint64_t(ranks) / n)
                              : int(synth::CounterRng(99, i, synth::RngPurpose::kShuffle).below(uint64_t(ranks)));
        owned[size_t(r)].push_back(i);
      }
      std::vector<PromptEntry> merged(n);
      for (int r = 0; r < ranks; ++r) {
        const auto stream = imagenet100_stream(7, {}, 2);
        for (auto it = owned[size_t(r)].rbegin(); it != owned[size_t(r)].rend(); ++it) merged[*it] = stream.at(*it);
      }
      size_t mismatches = 0;
      for (uint64_t i = 0; i < n; ++i) mismatches += !same(merged[i], reference[i]);
      CAPTURE(ranks);
      CAPTURE(scheme);
      CHECK(mismatches == 0);
    }
  }
  // A different seed gives a different stream.
  const auto other = imagenet100_stream(8, {}, 2).range(0, 200);
  size_t differ = 0;
  for (uint64_t i = 0; i < 200; ++i) differ += !same(other[i], reference[i]);
  CHECK(differ > 150);
}

TEST_CASE("every full block holds each class exactly k times") {
  for (int64_t k : {1, 3}) {
    const auto stream = imagenet100_stream(11, {}, k);
    REQUIRE(stream.block_size() == uint64_t(100 * k));
    std::vector<int32_t> first_block;
    for (uint64_t b : {0ull, 1ull, 2ull, 1000000ull}) {
      std::vector<int> counts(100, 0);
      std::vector<int32_t> order;
      for (uint64_t i = b * stream.block_size(); i < (b + 1) * stream.block_size(); ++i) {
        const int32_t c = stream.class_at(i);
        ++counts[size_t(c)];
        order.push_back(c);
      }
      for (int c = 0; c < 100; ++c) CHECK(counts[size_t(c)] == k);
      if (b == 0) first_block = order;
      else CHECK(order != first_block);  // shuffled afresh per block
    }
  }
}

TEST_CASE("template mixture frequencies follow the weights") {
  const std::vector<double> w = {1, 2, 3, 0, 0, 4};
  const auto stream = imagenet100_stream(3, w);
  const uint64_t n = 200000;
  std::vector<double> freq(6, 0);
  std::vector<int> scene_count(365, 0);
  for (const auto& e : stream.range(0, n)) {
    freq[size_t(e.prompt_template)] += 1.0 / double(n);
    if (e.prompt_template == PromptTemplate::kCHcInsideB) {
      REQUIRE(e.scene >= 0);
      ++scene_count[size_t(e.scene)];
      CHECK(e.prompt.find(" inside " + stream.scenes()[size_t(e.scene)]) != std::string::npos);
    } else {
      CHECK(e.scene == -1);
    }
  }
  for (size_t t = 0; t < 6; ++t) {
    CAPTURE(t);
    // Standard error sqrt(p(1-p)/n) <= 0.0011; allow 5 of them.
    CHECK(std::abs(freq[t] - w[t] / 10.0) < 0.0056);
  }
  CHECK(freq[3] == 0);
  CHECK(freq[4] == 0);
  // 80000 scene draws over 365 scenes: each about 219 +- 15.
  for (int c : scene_count) CHECK((c > 140 && c < 300));
}

TEST_CASE("class weights: frequencies follow the weights, still a pure function of the index") {
  std::vector<ClassInfo> classes;
  std::string weights_file;
  for (int c = 0; c < 10; ++c) {
    classes.push_back({"c" + std::to_string(c), "class " + std::to_string(c), "h", "d"});
    weights_file += "c" + std::to_string(c) + "\t" + std::to_string(c == 3 ? 0 : c + 1) + "\n";
  }
  const synth::test::ScratchDir dir("prompt_weights");
  const fs::path path = dir.path / "weights.txt";
  std::ofstream(path) << "# per-class counts\n" << weights_file;
  const auto weights = synth::load_class_weights(path.string(), classes);
  CHECK(weights[9] == 10);
  PromptStream stream(5, classes, {PromptTemplate::kC}, {}, {}, 1, weights);
  CHECK(!stream.balanced());
  const uint64_t n = 200000;
  double total = 0;
  for (double x : weights) total += x;
  std::vector<double> freq(10, 0);
  for (uint64_t i = 0; i < n; ++i) freq[size_t(stream.class_at(i))] += 1.0 / double(n);
  for (size_t c = 0; c < 10; ++c) {
    CAPTURE(c);
    CHECK(std::abs(freq[c] - weights[c] / total) < 0.0055);
  }
  CHECK(freq[3] == 0);
  PromptStream again(5, classes, {PromptTemplate::kC}, {}, {}, 1, weights);
  for (uint64_t i : {123456789ull, 0ull, 77ull}) CHECK(same(again.at(i), stream.at(i)));

  CHECK(input_error([&] { synth::load_class_weights(path.string(), {classes.begin(), classes.begin() + 5}); })
            .find("class 'c5' is not in the class list") != std::string::npos);
  std::ofstream(path) << "c0 1\nc1 -2\n";
  CHECK(input_error([&] { synth::load_class_weights(path.string(), classes); }).find(":2: weight '-2'") != std::string::npos);
  std::ofstream(path) << "c0 1\n";
  CHECK(input_error([&] { synth::load_class_weights(path.string(), classes); }).find("no weight for class 'c1'") !=
        std::string::npos);
}

TEST_CASE("from_config, listing and bad configurations") {
  synth::PromptStreamConfig config;
  config.seed = 42;
  config.class_file = kRoot + "/configs/classes/imagenet1k.tsv";
  config.scene_file = kRoot + "/configs/data/places365_categories.txt";
  const auto stream = PromptStream::from_config(config);
  CHECK(stream.classes().size() == 1000);
  CHECK(stream.scenes().size() == 365);
  const std::string listing = synth::format_prompt_listing(stream, 10, 5);
  CHECK(listing.rfind("index\tclass\tid\ttemplate\tscene\tnoise_seed\tprompt\n10\t", 0) == 0);
  CHECK(std::count(listing.begin(), listing.end(), '\n') == 6);
  const auto e = stream.at(12);
  CHECK(listing.find(e.prompt) != std::string::npos);
  CHECK(e.noise_seed == synth::CounterRng(42, 12, synth::RngPurpose::kNoise).next_u64());

  // A template with zero weight needs no scene file.
  synth::PromptStreamConfig no_scene = config;
  no_scene.scene_file = "/nonexistent/scenes.txt";
  no_scene.template_weights = {1, 1, 1, 1, 1, 0};
  CHECK(PromptStream::from_config(no_scene).scenes().empty());
  no_scene.template_weights = {1, 1, 1, 1, 1, 1};
  CHECK(input_error([&] { PromptStream::from_config(no_scene); }) == "/nonexistent/scenes.txt: cannot open file: No such file or directory");

  const std::vector<ClassInfo> bare = {{"", "red panda", "", "a mammal"}};
  CHECK(input_error([&] { PromptStream(0, {}, {PromptTemplate::kC}, {}, {}); }) == "prompt stream: class list is empty");
  CHECK(input_error([&] { PromptStream(0, bare, {PromptTemplate::kCHc}, {}, {}); }).find("needs hypernyms") != std::string::npos);
  CHECK_NOTHROW(PromptStream(0, bare, {PromptTemplate::kC, PromptTemplate::kCDc, PromptTemplate::kCHc}, {1, 1, 0}, {}));
  CHECK(input_error([&] { PromptStream(0, bare, {PromptTemplate::kC}, {}, {}, 0); }).find("block_multiplier must be >= 1") !=
        std::string::npos);
  CHECK(input_error([&] { PromptStream(0, bare, {PromptTemplate::kC}, {}, {}, int64_t(1) << 40); }).find("exceeds") !=
        std::string::npos);
  CHECK(input_error([&] { PromptStream(0, bare, {PromptTemplate::kC}, {1, 2}, {}); }).find("2 template weights for 1") !=
        std::string::npos);
  CHECK(input_error([&] { PromptStream(0, bare, {PromptTemplate::kC}, {0}, {}); }).find("sum to zero") != std::string::npos);
  CHECK(input_error([&] { PromptStream(0, bare, {}, {}, {}); }).find("no prompt templates") != std::string::npos);
  synth::PromptStreamConfig bad_name = config;
  bad_name.templates = {"c", "photo"};
  CHECK(input_error([&] { PromptStream::from_config(bad_name); }).find("unknown prompt template 'photo'") == 0);
}
