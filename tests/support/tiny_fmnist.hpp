// The trainer tests' common run: configs/smoke.toml's model (ResNet-18 at width 0.25) on real
// Fashion-MNIST images streamed through the ring, evaluated on the real test images. Each test
// changes what it is about.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.hpp"

namespace synth::test {

// Debian's dataset-fashion-mnist; SYNTH_FMNIST_DIR points elsewhere (the GPU machine has no Debian
// packages: tools/gpu-deps.sh carries a subset in .deps/fashion-mnist).
inline std::string fmnist_dir() {
  const char* dir = std::getenv("SYNTH_FMNIST_DIR");
  return dir && *dir ? dir : "/usr/share/datasets/fashion-mnist";
}

inline Config tiny_fmnist_config(int64_t total_images, int64_t batch) {
  Config c;
  c.source_file = "test";
  c.data.source = "fmnist";
  c.data.train_path = fmnist_dir();
  c.data.decode_threads = 2;
  c.ring.slots = int(batch * 2);
  c.ring.max_height = c.ring.max_width = 28;
  c.augment.crop_size = 28;
  c.augment.scale_min = 0.5;
  c.augment.mean = {0.286, 0.286, 0.286};
  c.augment.std = {0.353, 0.353, 0.353};
  c.model.arch = "resnet18";
  c.model.width = 0.25;
  c.model.num_classes = 10;
  c.optim.lr = 0.2;
  c.optim.weight_decay = 5e-4;
  c.optim.warmup_fraction = 0.05;
  c.train.batch_size = batch;
  c.train.total_images = total_images;
  c.eval.source = "fmnist";
  c.eval.path = c.data.train_path;
  c.eval.limit = 2000;
  c.eval.batch_size = 500;
  c.eval.resize = c.eval.crop = 28;
  return c;
}

}  // namespace synth::test
