// The synthetic image source: generator threads that run the guided Stable Diffusion sampler on
// the prompt stream and publish uint8 images into the ring, each tagged with its global index and
// class (Sariyildiz et al. 2023, "Fake it till you make it", generated online instead of stored).
//
// Exactly once: a generator takes generator.batch_size free slots, THEN claims that many
// consecutive positions of its IndexSequence from one shared counter (fewer at the end; extra
// slots go back), generates them and publishes every one - or fails and closes the ring. What image i is
// depends only on (run.seed, i): its prompt (PromptStream::at) and its initial noise
// (CounterRng(seed, i, kNoise)), never on which generator or batch made it. With
// generator.unique_images = N, its content (prompt, class, noise) is that of i mod N; the ring
// still carries i, so the ledger counts stream positions.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.hpp"
#include "diffusion/sampler.hpp"
#include "distributed/env.hpp"
#include "prompts/prompt_stream.hpp"
#include "stream/producer.hpp"

namespace synth {

class SyntheticProducer final : public Producer {
 public:
  // One thread per model in `models` (each StableDiffusion is used by one thread only).
  SyntheticProducer(std::vector<std::shared_ptr<StableDiffusion>> models, std::shared_ptr<const PromptStream> prompts,
                    Ring& ring, const SamplerOptions& options, int64_t batch_size, uint64_t seed, IndexSequence indices,
                    uint64_t unique_images = 0);
  void start() override;
  void join() override;
  uint64_t produced() const override { return produced_.load(); }
  double generate_seconds() const;  // summed over threads: time inside the sampler

 private:
  void run(StableDiffusion& sd);

  std::vector<std::shared_ptr<StableDiffusion>> models_;
  std::shared_ptr<const PromptStream> prompts_;
  Ring& ring_;
  SamplerOptions options_;
  int64_t batch_;
  uint64_t seed_;
  IndexSequence indices_;
  uint64_t unique_;  // generator.unique_images: content of index i is that of i mod unique_ (0 = i)
  std::atomic<uint64_t> next_;
  std::atomic<uint64_t> produced_{0};
  std::atomic<uint64_t> generate_us_{0};
  ProducerThreads threads_;  // last: joined before the members its threads use are destroyed
};

// The [generator] + [prompts] source of a config: generator.instances model copies loaded from
// generator.model_dir (InputError naming the file for missing/corrupt weights), the prompt stream
// of run.seed, and labels = rows of prompts.class_file. With load_models = false (a trainer rank
// fed by dedicated generator ranks) no model is loaded: the source names and describes the
// stream but cannot make producers. The models live on generator_device(cfg, env.local_rank)
// (generate/devices.hpp: "cuda" = this rank's LOCAL_RANK GPU); each producer thread makes that GPU
// current and works on a CUDA stream of its own. InputError naming generator.device when the
// device is malformed or missing (checked only when models are loaded).
ImageSource synthetic_image_source(const Config& cfg, bool load_models = true,
                                   const DistEnv& env = dist_env_from_process());

}  // namespace synth
