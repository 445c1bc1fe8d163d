// Checkpoints: everything a resumed run needs to continue bit for bit - model parameters and
// buffers, optimizer state (momentum buffers), the schedule position, the stream position and the
// ledger. There is no other RNG state to keep: every random choice is a counter-based draw keyed
// by (run.seed, image index, purpose), so (seed, images_seen) is the whole RNG state.
//
// Files are checkpoints/ckpt-<images seen, 12 digits>.pt (LibTorch archives), written atomically
// (temp file, fsync, rename, fsync of the directory): a crash mid-write leaves the previous
// checkpoint intact and no half-written file under the final name.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace synth {

struct TrainState {
  int64_t step = 0;           // optimizer steps done
  uint64_t images_seen = 0;   // images trained on = the next stream index
  uint64_t seed = 0;          // run.seed the stream was drawn with
  std::string ledger;         // Ledger::serialize()
  std::string arch;           // model identity, checked before loading weights
  double width = 1;
  int64_t num_classes = 0;
  double loss_scale = 0;           // fp16 dynamic loss scale (0: none; older checkpoints have none)
  int64_t loss_scale_good_steps = 0;
};

// Writes the checkpoint for state.images_seen and deletes all but the newest `keep`. Returns its path.
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const TrainState& state,
                                      torch::nn::Module& model, torch::optim::Optimizer& optimizer, int keep);

// Checkpoint files in dir, oldest first (by images seen).
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir);

// Reads a checkpoint's state only (no weights). Throws InputError naming the file when it is
// unreadable, truncated or not a synthstream checkpoint.
TrainState read_checkpoint_state(const std::filesystem::path& file);

// Loads state, weights and (when optimizer is non-null) optimizer state. The model must have the
// checkpoint's architecture: a mismatch is an InputError naming the file and both settings.
TrainState load_checkpoint(const std::filesystem::path& file, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer, const std::string& arch, double width,
                           int64_t num_classes);

}  // namespace synth
