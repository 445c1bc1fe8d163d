// A synthetic-stream config on the random tiny SD model (tests/fixtures/tiny-sd): DDIM, 32x24
// images, Fashion-MNIST's class file. The generator tests vary steps, batch, instances, templates
// and device from here.
#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace synth::test {

inline const std::string kTinySd = SYNTH_TEST_DATA "/tiny-sd";
inline const std::string kFmnistClasses = SYNTH_SOURCE_DIR "/configs/classes/fmnist.tsv";

inline Config tiny_sd_config(int steps, int batch_size, int instances, std::vector<std::string> templates,
                             const std::string& device = "cpu") {
  Config c;
  c.source_file = "test.toml";
  c.run.seed = 11;
  c.data.source = "synthetic";
  c.generator.model_dir = kTinySd;
  c.generator.scheduler = "ddim";
  c.generator.steps = steps;
  c.generator.width = 32;
  c.generator.height = 24;
  c.generator.batch_size = batch_size;
  c.generator.instances = instances;
  c.generator.device = device;
  c.prompts.class_file = kFmnistClasses;
  c.prompts.templates = std::move(templates);
  return c;
}

}  // namespace synth::test
