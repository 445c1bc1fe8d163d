// Checkpoints: everything a resumed run needs to continue bit for bit - model parameters and
// buffers, optimizer state (momentum buffers), the schedule position, the stream position and the
// ledger. There is no other RNG state to keep: every random choice is a counter-based draw keyed
// by (run.seed, image index, purpose), so (seed, images_seen) is the whole RNG state.
//
// Files are checkpoints/ckpt-<images seen, 12 digits>.pt (LibTorch archives), written atomically
// (temp file, fsync, rename, fsync of the directory): a crash mid-write leaves the previous
// checkpoint intact and no half-written file under the final name. Every read checks each record
// of the archive against the CRC-32 its writer stored, so a damaged file (truncated, a flipped
// bit) is refused rather than loaded, and --resume falls back to the newest intact one.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/error.hpp"

namespace synth {

// A checkpoint file that cannot be trusted: missing, unreadable, truncated or failing a CRC-32
// check. --resume skips it for an older one; an intact checkpoint that does not fit (another
// model, a newer format) stops with a plain InputError instead, as an older one would not fit
// either.
class DamagedCheckpoint : public InputError {
 public:
  using InputError::InputError;
};

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

// Writes the checkpoint for state.images_seen and deletes all but the newest `keep`, and any newer
// than this one (damaged files a resume skipped). Returns its path. A failed write (a full disk)
// is an Error naming the file and the cause, and leaves the previous checkpoints as they were.
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const TrainState& state,
                                      torch::nn::Module& model, torch::optim::Optimizer& optimizer, int keep);

// Checkpoint files in dir, oldest first (by images seen).
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir);

// Reads a checkpoint's state only (no weights). Throws DamagedCheckpoint naming the file when it
// is missing, unreadable, truncated, corrupt or not a synthstream checkpoint.
TrainState read_checkpoint_state(const std::filesystem::path& file);

// Loads state, weights and (when optimizer is non-null) optimizer state. The model must have the
// checkpoint's architecture: a mismatch is an InputError naming the file and both settings.
// The file is read onto the CPU whatever device it was saved from, and copied into the model's
// own tensors (and the momentum buffers moved beside them), so the model keeps its device and
// memory format: a checkpoint of a CUDA run loads on a machine without a GPU.
TrainState load_checkpoint(const std::filesystem::path& file, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer, const std::string& arch, double width,
                           int64_t num_classes);

struct Resumed {
  std::filesystem::path file;  // empty: dir holds no checkpoint
  TrainState state;
};

// load_checkpoint of the newest intact checkpoint in dir. Each damaged newer one is skipped with
// one line through warn ("warning: checkpoint '<file>' is ...") and leaves model and optimizer
// untouched. Throws InputError when every checkpoint in dir is damaged: a run is never silently
// restarted from image 0.
Resumed load_newest_checkpoint(const std::filesystem::path& dir, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer, const std::string& arch, double width,
                               int64_t num_classes, const std::function<void(const std::string&)>& warn);

}  // namespace synth
