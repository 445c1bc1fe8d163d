// DINO multi-crop parameters (Caron et al. 2021, "Emerging properties in self-supervised vision
// transformers", main_dino.py DataAugmentationDINO): everything random about one crop of one
// source image, drawn from CounterRng(run seed, global image index, kDinoAugment, crop number).
// The executors (dino_cpu.hpp, kernels/dino_crop.cuh) take these parameters and never draw
// anything themselves, so CPU and GPU see the same crops and any crop can be re-created alone.
//
// Crop numbering: global crops 0 .. G-1, then local crops G .. G+L-1. Global crop g follows DINO's
// first global transform (blur p = blur_p_first, never solarized) when g is even and its second
// (blur p = blur_p_second, solarize p = solarize_p) when g is odd. Local crops use blur_p_local and
// are never solarized.
//
// Draw order inside one crop's stream (fixed, so a stream can be replayed by hand):
//   1. crop box, torchvision RandomResizedCrop.get_params: up to 10 attempts, each one double for
//      the area fraction U[scale_min, scale_max) and one for the log aspect ratio
//      U[log ratio_min, log ratio_max); w = round(sqrt(area * s * r)), h = round(sqrt(area * s / r))
//      with Python's round-half-to-even; an attempt is accepted when 0 < w <= W and 0 < h <= H,
//      then top = below(H - h + 1) and left = below(W - w + 1). After 10 failures the centre crop
//      fallback of get_params: the whole image if its ratio W/H lies in [ratio_min, ratio_max],
//      else the widest/tallest box of the nearest allowed ratio, centred with floor division.
//   2. flip: uniform() < flip_p.
//   3. colour jitter: uniform() < jitter_p; then the order of the four operations as a Fisher-Yates
//      permutation (torch.randperm(4) in ColorJitter.get_params; 0 brightness, 1 contrast,
//      2 saturation, 3 hue), then the four factors in the order brightness, contrast, saturation,
//      hue, each uniform over [max(0, 1 - b), 1 + b] (hue: [-h, h]). All are drawn whatever the
//      coin says. An operation whose config strength is 0 is dropped from the order, as
//      torchvision's _check_input turns a zero range into None.
//   4. grayscale: uniform() < grayscale_p.
//   5. blur: uniform() < blur probability of the crop's kind, then sigma = U[sigma_min, sigma_max).
//   6. solarize: uniform() < solarize_p, kept only for second-type global crops.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.hpp"
#include "core/rng.hpp"

namespace synth {

enum class DinoCropKind : uint8_t { kGlobalFirst = 0, kGlobalSecond = 1, kLocal = 2 };
const char* dino_crop_kind_name(DinoCropKind kind);

// Pixel box of the source image, torchvision's (i, j, h, w).
struct DinoBox {
  int top = 0, left = 0, height = 0, width = 0;
};

enum DinoJitterOp : uint8_t { kJitterBrightness = 0, kJitterContrast = 1, kJitterSaturation = 2, kJitterHue = 3 };

struct DinoCropParams {
  int crop = 0;                   // crop number (globals first)
  DinoCropKind kind = DinoCropKind::kGlobalFirst;
  int out_size = 0;               // side of the square output crop
  DinoBox box;
  bool box_fallback = false;      // true when all 10 attempts failed and the centre crop was used
  bool flip = false;
  bool jitter = false;            // apply the jitter operations below
  int jitter_ops = 0;             // how many entries of jitter_order are used (ops of strength 0 are left out)
  std::array<uint8_t, 4> jitter_order{{0, 1, 2, 3}};
  float brightness = 1, contrast = 1, saturation = 1, hue = 0;  // factors as torchvision's adjust_*
  bool grayscale = false;
  bool blur = false;
  float sigma = 0;                // blur sigma in output pixels (drawn even when blur is false)
  bool solarize = false;
};

// Throws InputError naming the augment.dino key when a value is outside its valid range (the
// config loader checks the same; this guards callers that build a DinoConfig in code).
void validate_dino_config(const DinoConfig& cfg);

// torchvision RandomResizedCrop.get_params on a height x width image (see the draw order above).
DinoBox dino_random_resized_crop(CounterRng& rng, int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, bool* fallback = nullptr);

DinoCropKind dino_crop_kind(const DinoConfig& cfg, int crop);

// Parameters of crop `crop` (0 .. global_crops + local_crops - 1) of image `index` whose source is
// height x width. Pure function of its arguments.
DinoCropParams draw_dino_crop(const DinoConfig& cfg, uint64_t seed, uint64_t index, int crop, int height, int width);

// All crops of one image, globals first.
std::vector<DinoCropParams> draw_dino_params(const DinoConfig& cfg, uint64_t seed, uint64_t index, int height,
                                             int width);

// One crop's parameters as stream-augment writes them to params.json (and the reference suite
// reads them back to redo the crop with torchvision): box, flip, jitter values in the order
// applied, grayscale, blur sigma, solarize.
nlohmann::json dino_params_json(const DinoCropParams& p);

}  // namespace synth
