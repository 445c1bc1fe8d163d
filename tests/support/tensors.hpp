// Error measures of the parity tests (tolerances are stated at each use).
#pragma once
#include <torch/torch.h>

namespace synth::test {

// Relative L2 error ||ours - ref|| / ||ref||, the measure of llm.c's test_gpt2 and of the
// reference suite (tests/reference/refsupport.py).
inline double rel_l2(const torch::Tensor& ours, const torch::Tensor& ref) {
  return ((ours - ref).norm() / ref.norm()).item<double>();
}

}  // namespace synth::test
