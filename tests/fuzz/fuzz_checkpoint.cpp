// Fuzzes the checkpoint reader (src/train/checkpoint.cpp: load_checkpoint -> open_into ->
// verify_records (LibTorch's PyTorchStreamReader zip reader, our own zip central-directory walk in
// stored_crcs, the CRC-32 check of every record), InputArchive::load_from (TorchScript archive),
// read_state, then copy_into and the SGD state restore for a small model. The input is the
// checkpoint file. read_checkpoint_state (stream-eval, stream-export) runs the same open_into.
// Expected outcome for a bad file: DamagedCheckpoint or InputError (both synth::Error).
#include "fuzz_checkpoint_model.hpp"
#include "fuzz_common.hpp"
#include "train/checkpoint.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string file = fuzz::scratch_dir() + "/ckpt-000000000004.pt";
  static fuzz::CheckpointNet net;
  static std::unique_ptr<torch::optim::SGD> sgd = fuzz::make_checkpoint_sgd(net);
  fuzz::write_file(file, data, size);
  fuzz::expect_ok_or_error([&] {
    const synth::TrainState s =
        synth::load_checkpoint(file, *net, sgd.get(), fuzz::kCheckpointArch, fuzz::kCheckpointWidth, fuzz::kCheckpointClasses);
    fuzz::check(s.arch == fuzz::kCheckpointArch && s.num_classes == fuzz::kCheckpointClasses, "identity checked");
  });
  return 0;
}
