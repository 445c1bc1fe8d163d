// Training a small Stable Diffusion v1 model from scratch, in the diffusers layout, so that the
// synthetic stream has a real trained generator on any machine (models/fmnist-sd: Fashion-MNIST).
// The recipe of Rombach et al., CVPR 2022, at toy scale:
//   1. the KL autoencoder (Sec. 3.1): L1 reconstruction + kl_weight * KL(q(z|x) || N(0, I)), Adam;
//      then scaling_factor = 1 / std of the latents (App. D.1, "rescale the latent space"), written
//      into vae/config.json as diffusers reads it;
//   2. the text encoder and the U-Net jointly (the LDM text-to-image model trains its transformer
//      with the U-Net, Sec. 4.3: a randomly initialised CLIP text encoder carries no meaning, and a
//      frozen one would leave the class names buried in noise), with the epsilon-prediction loss
//      || eps - eps_theta(sqrt(abar_t) z0 + sqrt(1 - abar_t) eps, t, tau(y)) ||^2 (Eq. 2/3),
//      t uniform over the scheduler's training steps, y the prompt the project's own prompt stream
//      gives image j's class (every template and scene), replaced by "" with probability
//      empty_prompt_p so that classifier-free guidance works (Ho & Salimans 2022); AdamW with
//      linear warm-up, gradient clipping, and an exponential moving average of the weights, which
//      is what gets saved.
// Every random draw is CounterRng(seed, step, kSdTrain, sub) and the initial weights come from
// torch::manual_seed(seed): one seed and one thread count give identical weights.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "prompts/prompt_stream.hpp"

namespace synth {

struct SdTrainOptions {
  std::string model_dir;            // configs in, weights out (diffusers layout)
  uint64_t seed = 0;
  int64_t vae_steps = 1200, vae_batch = 32;     // the defaults made models/fmnist-sd (MODEL_CARD.md)
  double vae_lr = 1e-3, kl_weight = 1e-5;
  int64_t unet_steps = 3500, unet_batch = 64;
  double unet_lr = 1e-3, warmup_steps = 200, ema_decay = 0.999, grad_clip = 1.0;
  double empty_prompt_p = 0.1;
  double progress_seconds = 10;
  bool fp16_weights = true;         // weights are saved as fp16 (the sampler computes in fp32 on CPUs)
};

// Training images: uint8 [N, H, W, 3] (H, W the VAE's sample size) and class labels, row = class
// of the prompt stream's class file.
struct SdTrainData {
  torch::Tensor images;
  std::vector<int32_t> labels;
};

struct SdTrainResult {
  double vae_l1 = 0, vae_kl = 0;   // mean over the last 100 steps
  double scaling_factor = 0;
  double unet_loss_first = 0, unet_loss_last = 0;  // mean over the first / last 100 steps
  double seconds = 0;
};

// One line per progress report (loss, images/s, ETA) goes to `log`; the per-step losses go to
// <model_dir>/train_log.jsonl. Writes vae/, text_encoder/, unet/ weights and vae/config.json's
// scaling_factor; the other files of model_dir (model_index.json, configs, tokenizer/) are the
// architecture and stay as they are.
SdTrainResult train_sd(const SdTrainOptions& options, const SdTrainData& data, const PromptStream& prompts,
                       const std::function<void(const std::string&)>& log);

// Gray Fashion-MNIST-style images [N, h, w] (uint8) -> [N, size, size, 3]: centred on a black
// canvas (28 -> 32 pads 2 pixels each side) and replicated to RGB.
torch::Tensor pad_gray_to_rgb(const torch::Tensor& gray, int64_t size);

}  // namespace synth
