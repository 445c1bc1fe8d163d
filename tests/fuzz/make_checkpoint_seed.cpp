// Writes the seed checkpoint of the checkpoint fuzzer (tests/fuzz/corpus/checkpoint/): a real
// save_checkpoint of fuzz_checkpoint_model.hpp's model after one SGD step (so momentum buffers
// exist). Built by tests/fuzz/CMakeLists.txt only on request:
//   cmake --build build-fuzz --target make_checkpoint_seed && build-fuzz/make_checkpoint_seed OUT_DIR
#include <cstdio>

#include "fuzz_checkpoint_model.hpp"
#include "train/checkpoint.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  torch::manual_seed(0);
  fuzz::CheckpointNet net;
  auto sgd = fuzz::make_checkpoint_sgd(net);
  sgd->zero_grad();
  net->forward(torch::randn({4, 2})).pow(2).sum().backward();
  sgd->step();
  synth::TrainState s;
  s.step = 1;
  s.images_seen = 4;
  s.seed = 7;
  s.ledger = "low=4;dup=0;sparse=";
  s.arch = fuzz::kCheckpointArch;
  s.width = fuzz::kCheckpointWidth;
  s.num_classes = fuzz::kCheckpointClasses;
  const auto file = synth::save_checkpoint(argv[1], s, *net, *sgd, 1);
  std::printf("%s\n", file.c_str());
  return 0;
}
