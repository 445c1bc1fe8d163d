// The training stream of a config as batches of images, for a training loop that is not ours
// (the Python package, python/synthstream): the config's source (Stable Diffusion generator or a
// real dataset) fills a ring, an OrderedBatcher turns the ring into this rank's part of each global
// batch (StreamShard), and a Ledger records every index handed out. The images are the ring's
// bytes as uint8, exactly what stream-train's augmentation reads.
//
// Exactly once with resume: position() is the job-wide stream position after the last batch
// next() returned (a step boundary); a script that saves position() and ledger() with its model
// and builds the stream again from them continues with the next step, as `stream-train --resume`
// does from a checkpoint.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>

#include <torch/torch.h>

#include "config/config.hpp"
#include "data/dataset.hpp"
#include "stream/ledger.hpp"
#include "stream/producer.hpp"

namespace synth {

// The training images of a config, opened: the Stable Diffusion generator (data.source =
// "synthetic"; no weights loaded with load_models = false, for a trainer fed by generator ranks)
// or the real dataset with its decoders. InputError naming the file or key when it cannot open.
struct TrainingSource {
  std::unique_ptr<Dataset> dataset;  // real sources; the ImageSource refers to it
  ImageSource source;
};
TrainingSource open_training_source(const Config& cfg, bool load_models = true);

struct StreamBatch {
  torch::Tensor images;   // uint8 N x C x H x W, on the CPU (the ring is host memory)
  torch::Tensor labels;   // int64 N, class ids (rows of the class file)
  torch::Tensor indices;  // int64 N, global stream indices, increasing
};

// Where a resumed stream starts: position (a step boundary) and the ledger saved with it.
struct StreamState {
  uint64_t position = 0;
  Ledger ledger;
};

class BatchStream {
 public:
  // Trainer rank `rank` of `ranks` over [state.position, train.total_images) in global batches of
  // train.batch_size. Loads the generator's models or opens the dataset now (InputError naming the
  // file or key when it cannot); generation starts with the first next().
  BatchStream(const Config& cfg, int rank, int ranks, StreamState state = {});
  // The same over a source opened once (open_training_source of this config) and shared: a stream
  // built again at a saved state (Python's load_state_dict) starts without loading the models again.
  BatchStream(std::shared_ptr<const TrainingSource> source, const Config& cfg, int rank, int ranks, StreamState state = {});
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  // This rank's part of the next global batch; nullopt at the end of the stream. Rethrows a
  // producer's error (a corrupt image, an allocation failure) with its message. InputError when the
  // images of one batch differ in size (an image-folder source: crop them with dino_crops first).
  std::optional<StreamBatch> next();

  uint64_t position() const { return position_; }  // job-wide images before the next batch
  uint64_t end() const;                             // train.total_images
  const Ledger& ledger() const { return ledger_; }  // this rank's indices so far (resumed ledger included)
  const ImageSource& source() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t position_;
  Ledger ledger_;
};

}  // namespace synth
