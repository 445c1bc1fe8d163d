// Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training"): the forward pass runs
// under autocast, so convolutions and matrix products compute in fp16 or bf16 while the weights,
// the optimizer and the loss stay fp32. fp16's narrow range needs dynamic loss scaling (Sec. 3.2):
// the loss is multiplied by S before backward so small gradients do not flush to zero; the
// gradients are divided by S before the step; a step whose gradients overflowed is skipped and S
// halved; after `interval` good steps S doubles (torch.cuda.amp.GradScaler's policy and defaults).
// bf16 has fp32's range and needs no scaling.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace synth {

enum class Precision { kFp32, kFp16, kBf16 };
Precision parse_precision(const std::string& name);  // fp32 | fp16 | bf16; InputError otherwise

// Autocast for `device` in `precision` while in scope (nothing for fp32). Restores the previous
// state and drops autocast's weight-cast cache on exit, as torch.autocast's __exit__ does.
class AutocastScope {
 public:
  AutocastScope(Precision precision, torch::DeviceType device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false, was_enabled_ = false;
  torch::DeviceType device_;
  torch::ScalarType was_dtype_ = torch::kFloat32;
};

class LossScaler {
 public:
  // enabled = false: scale 1, unscale only checks finiteness, update does nothing.
  explicit LossScaler(bool enabled, double initial = 65536.0, double growth = 2.0, double backoff = 0.5,
                      int64_t interval = 2000);

  torch::Tensor scale(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }
  // Divides every defined gradient by S in place. True when all of them are finite. Call once the
  // gradients are complete (after the all-reduce on several ranks, so every rank decides alike).
  bool unscale(const std::vector<torch::Tensor>& params) const;
  // After a step: backoff on overflow, growth after `interval` consecutive good steps.
  void update(bool finite);

  bool enabled() const { return enabled_; }
  double value() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }
  void restore(double scale, int64_t good_steps);  // from a checkpoint

 private:
  bool enabled_;
  double scale_, growth_, backoff_;
  int64_t interval_, good_steps_ = 0;
};

}  // namespace synth
