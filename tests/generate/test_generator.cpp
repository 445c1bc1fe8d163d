// The synthetic source: generator threads running the toy SD model feed the ring; every index of
// the range arrives exactly once with the prompt stream's class, and image i is the sampler's
// image for (seed, i) whichever generator, batch or claim order produced it.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "config/config.hpp"
#include "config/load.hpp"
#include "core/error.hpp"
#include "generate/generator.hpp"
#include "io/image.hpp"
#include "stream/batcher.hpp"
#include "support/child_process.hpp"
#include "support/tiny_sd_config.hpp"

namespace {

// 3 DDIM steps, batches of 5, two generator threads, three templates.
synth::Config tiny_config() { return synth::test::tiny_sd_config(3, 5, 2, {"c", "c_hc", "c_dc"}); }

}  // namespace

TEST_CASE("two generators stream [first, end) exactly once, images equal to single-image sampling") {
  const synth::Config c = tiny_config();
  const synth::ImageSource source = synth::synthetic_image_source(c);
  CHECK(source.num_classes == 10);
  CHECK(source.tag == synth::SourceTag::kSynthetic);
  synth::Ring ring(32, 32 * 24 * 3);
  const uint64_t first = 7, end = 30;  // 23 images: batches of 5 and a short claim at the end
  auto producer = source.make_producer(ring, synth::IndexSequence::range(first, end));
  synth::OrderedBatcher batcher(ring, 8, first, end);
  producer->start();
  std::map<uint64_t, std::vector<uint8_t>> images;
  std::map<uint64_t, int> labels;
  while (auto slots = batcher.next()) {
    for (int s : *slots) {
      const synth::SlotMeta& m = ring.meta(s);
      CHECK(m.source == synth::SourceTag::kSynthetic);
      CHECK(m.height == 24);
      CHECK(m.width == 32);
      CHECK(images.count(m.index) == 0);
      images[m.index].assign(ring.data(s), ring.data(s) + 32 * 24 * 3);
      labels[m.index] = m.label;
      ring.release(s);
    }
  }
  producer->join();
  CHECK(producer->produced() == end - first);
  REQUIRE(images.size() == end - first);
  CHECK(images.begin()->first == first);
  CHECK(images.rbegin()->first == end - 1);

  const auto stream = synth::PromptStream::of_run(c);
  std::set<int> classes;
  for (const auto& l : labels) {
    CHECK(l.second == stream.class_at(l.first));
    classes.insert(l.second);
  }
  CHECK(classes.size() >= 5);  // balanced blocks of 10 classes

  // Image 19 alone, from a fresh model: the same pixels up to float reassociation across batch
  // sizes (a few uint8 levels at most).
  synth::StableDiffusion sd(synth::test::kTinySd, torch::kCPU, torch::kFloat32);
  synth::SamplerOptions o;
  o.scheduler = "ddim";
  o.steps = 3;
  o.width = 32;
  o.height = 24;
  const auto out = sd.sample({stream.at(19).prompt}, sd.initial_noise({19}, c.run.seed, 32, 24), o);
  const std::vector<uint8_t>& streamed = images[19];
  int max_diff = 0;
  for (size_t i = 0; i < streamed.size(); ++i)
    max_diff = std::max(max_diff, std::abs(int(streamed[i]) - int(out.images[0].pixels[i])));
  CHECK(max_diff <= 2);
  CHECK(images[19] != images[20]);
}

TEST_CASE("a producer error closes the ring; join rethrows it") {
  synth::Config c = tiny_config();
  c.generator.instances = 1;
  const synth::ImageSource source = synth::synthetic_image_source(c);
  synth::Ring small(16, 8 * 8 * 3);  // too small for 32x24 images
  CHECK_THROWS_WITH_AS(source.make_producer(small, synth::IndexSequence::range(0, 10)), doctest::Contains("raise ring.max_height"), synth::InputError);
  synth::Config bad = tiny_config();
  bad.generator.model_dir = SYNTH_TEST_DATA "/configs";
  CHECK_THROWS_AS(synth::synthetic_image_source(bad), synth::InputError);
}

#ifdef STREAM_SAMPLE_EXE
// Issue 16: `stream-sample --config CFG --index I` must give the very image the run trained on. The
// producer streams [0, 15) in batches of 5 over two generator threads; stream-sample re-makes
// image 7 (and 8) from the config file alone, and the PNGs equal the streamed bytes exactly.
TEST_CASE("stream-sample --config --index re-creates streamed images bit for bit") {
  const synth::test::ScratchDir dir("sample_exact");
  const std::string toml = "[run]\nseed = 11\n[data]\nsource = \"synthetic\"\n[generator]\nmodel_dir = \"" + synth::test::kTinySd +
                           "\"\nscheduler = \"ddim\"\nsteps = 3\nguidance = 5.0\nwidth = 32\nheight = 24\nbatch_size = 5\n"
                           "instances = 2\n[prompts]\nclass_file = \"" + synth::test::kFmnistClasses +
                           "\"\ntemplates = [\"c\", \"c_hc\", \"c_dc\"]\n[train]\ntotal_images = 15\nbatch_size = 5\n";
  {
    std::ofstream(dir.file("run.toml")) << toml;
  }
  const synth::Config c = synth::load_config(dir.file("run.toml"), {}, synth::kNoInputs);
  synth::Ring ring(16, 32 * 24 * 3);
  auto producer = synth::synthetic_image_source(c).make_producer(ring, synth::IndexSequence::range(0, 15));
  synth::OrderedBatcher batcher(ring, 5, 0, 15);
  producer->start();
  std::map<uint64_t, std::vector<uint8_t>> streamed;
  while (auto slots = batcher.next())
    for (int s : *slots) {
      streamed[ring.meta(s).index].assign(ring.data(s), ring.data(s) + 32 * 24 * 3);
      ring.release(s);
    }
  producer->join();
  REQUIRE(streamed.size() == 15);

  const auto r = synth::test::run(STREAM_SAMPLE_EXE,
                                  {"--config", dir.file("run.toml"), "--index", "7", "--count", "2", "--out", dir.file("png")});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.err.find("overrides") == std::string::npos);
  for (const uint64_t i : {7, 8}) {
    const synth::ImageU8 png = synth::decode_image_file(dir.file("png/" + std::to_string(i) + ".png"));
    REQUIRE(png.bytes() == streamed[i].size());
    CHECK(png.pixels == streamed[i]);
  }
  CHECK_FALSE(std::filesystem::exists(dir.path / "png" / "5.png"));  // the rest of the batch is not written

  // A flag that changes a setting is reported, and the image is then not the run's.
  const auto o = synth::test::run(STREAM_SAMPLE_EXE, {"--config", dir.file("run.toml"), "--index", "7", "--steps", "2",
                                                      "--out", dir.file("png2")});
  REQUIRE(o.code == 0);
  CHECK(o.err.find("--steps 2 overrides generator.steps = 3") != std::string::npos);
  CHECK(synth::decode_image_file(dir.file("png2/7.png")).pixels != streamed[7]);
}
#endif

TEST_CASE("generator.unique_images = N streams a fixed dataset of N images repeated, indices still distinct") {
  synth::Config c = tiny_config();
  c.generator.unique_images = 4;
  c.generator.instances = 1;
  synth::Ring ring(16, 32 * 24 * 3);
  auto producer = synth::synthetic_image_source(c).make_producer(ring, synth::IndexSequence::range(0, 10));
  synth::OrderedBatcher batcher(ring, 5, 0, 10);
  producer->start();
  std::map<uint64_t, std::vector<uint8_t>> images;
  std::map<uint64_t, int> labels;
  while (auto slots = batcher.next())
    for (int s : *slots) {
      images[ring.meta(s).index].assign(ring.data(s), ring.data(s) + 32 * 24 * 3);
      labels[ring.meta(s).index] = ring.meta(s).label;
      ring.release(s);
    }
  producer->join();
  REQUIRE(images.size() == 10);
  const auto stream = synth::PromptStream::of_run(c);
  for (uint64_t i = 0; i < 10; ++i) {
    CHECK(labels[i] == stream.class_at(i % 4));
    // Batches differ (float reassociation), so equal up to a few 8-bit levels; distinct content differs.
    int max_diff = 0;
    for (size_t k = 0; k < images[i].size(); ++k)
      max_diff = std::max(max_diff, std::abs(int(images[i][k]) - int(images[i % 4][k])));
    CHECK(max_diff <= 2);
  }
  CHECK(images[0] != images[1]);
}
