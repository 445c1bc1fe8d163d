#include "generate/generator.hpp"

#include <chrono>
#include <cstring>
#include <optional>

#ifdef SYNTH_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "core/error.hpp"
#include "generate/devices.hpp"

namespace synth {
namespace {

// A generator thread works on its model's GPU, on a stream of its own for the thread's lifetime:
// threads sharing a GPU then overlap, and none queues behind the trainer's work on the default
// stream. The sampler waits for the current stream only, which is this one. Nothing on the CPU.
class ThreadDevice {
 public:
  explicit ThreadDevice(const torch::Device& device) {
    if (!device.is_cuda()) return;
#ifdef SYNTH_WITH_CUDA
    device_.emplace(device);
    stream_.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
#else
    throw Error("a generator on " + device.str() + " needs the CUDA flavor (-DSYNTH_CUDA=ON)");
#endif
  }

 private:
#ifdef SYNTH_WITH_CUDA
  std::optional<c10::cuda::CUDAGuard> device_;          // destroyed last: restores the thread's device
  std::optional<c10::cuda::CUDAStreamGuard> stream_;
#endif
};

}  // namespace

SyntheticProducer::SyntheticProducer(std::vector<std::shared_ptr<StableDiffusion>> models,
                                     std::shared_ptr<const PromptStream> prompts, Ring& ring,
                                     const SamplerOptions& options, int64_t batch_size, uint64_t seed,
                                     IndexSequence indices, uint64_t unique_images)
    : models_(std::move(models)),
      prompts_(std::move(prompts)),
      ring_(ring),
      options_(options),
      batch_(batch_size),
      seed_(seed),
      indices_(std::move(indices)),
      unique_(unique_images),
      next_(0),
      threads_(ring) {
  if (models_.empty()) throw InputError("generator.instances must be >= 1");
  if (batch_size < 1) throw InputError("generator.batch_size must be >= 1");
  const size_t bytes = size_t(options.width) * size_t(options.height) * 3;
  if (bytes > ring.slot_bytes())
    throw InputError("a generated " + std::to_string(options.height) + "x" + std::to_string(options.width) +
                     " image needs " + std::to_string(bytes) + " bytes, a ring slot holds " +
                     std::to_string(ring.slot_bytes()) + "; raise ring.max_height/ring.max_width");
}

void SyntheticProducer::start() {
  threads_.start(int(models_.size()), [this](int worker) { run(*models_[size_t(worker)]); });
}

void SyntheticProducer::join() { threads_.join(); }

double SyntheticProducer::generate_seconds() const { return double(generate_us_.load()) * 1e-6; }

void SyntheticProducer::run(StableDiffusion& sd) {
  const ThreadDevice on_device(sd.device());
  std::vector<int> slots;
  try {
    while (true) {
      // Slots first, then indices (see the header and stream/batcher.hpp).
      slots.clear();
      for (int64_t k = 0; k < batch_; ++k) {
        const std::optional<int> s = ring_.acquire_free();
        if (!s) break;
        slots.push_back(*s);
      }
      if (int64_t(slots.size()) < batch_) break;  // ring closed
      uint64_t begin = next_.load();
      uint64_t count = 0;
      do {
        count = std::min<uint64_t>(uint64_t(batch_), indices_.size > begin ? indices_.size - begin : 0);
      } while (count > 0 && !next_.compare_exchange_weak(begin, begin + count));
      if (count == 0) break;
      for (size_t k = size_t(count); k < slots.size(); ++k) ring_.discard(slots[k]);
      slots.resize(size_t(count));

      std::vector<PromptEntry> entries;
      std::vector<uint64_t> positions;  // stream indices, for the ring and the ledger
      for (uint64_t p = begin; p < begin + count; ++p) {
        positions.push_back(indices_.at(p));
        entries.push_back(prompts_->at(unique_ ? positions.back() % unique_ : positions.back()));
      }
      std::vector<std::string> texts;
      std::vector<uint64_t> indices;  // content indices: noise keys
      for (const PromptEntry& e : entries) {
        texts.push_back(e.prompt);
        indices.push_back(e.index);
      }
      const auto t0 = std::chrono::steady_clock::now();
      const torch::Tensor noise = sd.initial_noise(indices, seed_, options_.width, options_.height);
      const SampleOutput out = sd.sample(texts, noise, options_);
      generate_us_.fetch_add(uint64_t(
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
      for (size_t k = 0; k < slots.size(); ++k) {
        const ImageU8& img = out.images[k];
        std::memcpy(ring_.data(slots[k]), img.pixels.data(), img.bytes());
        SlotMeta& m = ring_.meta(slots[k]);
        m.index = positions[k];
        m.label = entries[k].class_index;
        m.source = SourceTag::kSynthetic;
        m.height = img.height;
        m.width = img.width;
        m.channels = 3;
      }
      for (int s : slots) ring_.publish(s);
      produced_.fetch_add(count);
      slots.clear();
    }
  } catch (...) {
    for (int s : slots) ring_.discard(s);
    throw;  // ProducerThreads keeps it for join() and closes the ring
  }
  for (int s : slots) ring_.discard(s);
}

ImageSource synthetic_image_source(const Config& cfg, bool load_models, const DistEnv& env) {
  const GeneratorConfig& g = cfg.generator;
  torch::Device device(torch::kCPU);
  try {
    device = generator_device(cfg, env.local_rank);
    if (load_models) require_device(device, "generator.device", g.device);
  } catch (const InputError& e) {
    throw InputError(with_context(cfg.source_file, e.what()));
  }
  const torch::Dtype dtype = g.dtype == "fp16" ? torch::kHalf : torch::kFloat32;
  std::vector<std::shared_ptr<StableDiffusion>> models;
  if (load_models) {
    for (int i = 0; i < g.instances; ++i) models.push_back(std::make_shared<StableDiffusion>(g.model_dir, device, dtype));
    models[0]->latent_size(g.width, g.height);  // InputError when the size does not fit the VAE
  }

  auto prompts = std::make_shared<const PromptStream>(PromptStream::of_run(cfg));

  SamplerOptions options;
  options.scheduler = g.scheduler;
  options.steps = g.steps;
  options.guidance = g.guidance;
  options.width = g.width;
  options.height = g.height;
  options.keep_decoded = false;  // only the uint8 images leave the GPU

  ImageSource source;
  source.name = "Stable Diffusion " + g.model_dir + " (" + g.scheduler + ", " + std::to_string(g.steps) +
                " steps, guidance " + std::to_string(g.guidance).substr(0, 4) + ", " + std::to_string(g.width) + "x" +
                std::to_string(g.height) + ", " + std::to_string(prompts->classes().size()) + " classes)";
  source.num_classes = int(prompts->classes().size());
  source.tag = SourceTag::kSynthetic;
  const uint64_t seed = cfg.run.seed;
  const int64_t batch = g.batch_size;
  const uint64_t unique = uint64_t(g.unique_images);
  if (load_models)
    source.make_producer = [models, prompts, options, batch, seed, unique](Ring& ring, const IndexSequence& indices) {
      return std::unique_ptr<Producer>(new SyntheticProducer(models, prompts, ring, options, batch, seed, indices, unique));
    };
  source.describe = [prompts, unique](uint64_t index) { return prompts->at(unique ? index % unique : index).prompt; };
  return source;
}

}  // namespace synth
