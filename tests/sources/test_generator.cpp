// The synthetic source: generator threads running the toy SD model feed the ring; every index of
// the range arrives exactly once with the prompt stream's class, and image i is the sampler's
// image for (seed, i) whichever generator, batch or claim order produced it.
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <set>

#include "config/config.hpp"
#include "core/error.hpp"
#include "sources/generator.hpp"
#include "stream/batcher.hpp"

namespace {

const std::string kSd = SYNTH_TEST_DATA "/tiny-sd";
const std::string kClasses = SYNTH_SOURCE_DIR "/configs/classes/fmnist.tsv";

synth::Config tiny_config() {
  synth::Config c;
  c.source_file = "test";
  c.run.seed = 11;
  c.data.source = "synthetic";
  c.generator.model_dir = kSd;
  c.generator.scheduler = "ddim";
  c.generator.steps = 3;
  c.generator.width = 32;
  c.generator.height = 24;
  c.generator.batch_size = 5;
  c.generator.instances = 2;
  c.prompts.class_file = kClasses;
  c.prompts.templates = {"c", "c_hc", "c_dc"};
  return c;
}

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

  synth::PromptStreamConfig pc;
  static_cast<synth::PromptsConfig&>(pc) = c.prompts;
  pc.seed = c.run.seed;
  const auto stream = synth::PromptStream::from_config(pc);
  std::set<int> classes;
  for (const auto& l : labels) {
    CHECK(l.second == stream.class_at(l.first));
    classes.insert(l.second);
  }
  CHECK(classes.size() >= 5);  // balanced blocks of 10 classes

  // Image 19 alone, from a fresh model: the same pixels up to float reassociation across batch
  // sizes (a few uint8 levels at most).
  synth::StableDiffusion sd(kSd, torch::kCPU, torch::kFloat32);
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
