// Counter-based random numbers: every random choice in synthstream is a pure function of
// (seed, image index, purpose, sub-counter), so results never depend on batch size, thread timing
// or the number of GPUs. Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC 2011), the generator cuRAND and PyTorch's CUDA backend also use.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace synth {

// Purposes keep streams for different decisions independent even for the same image index.
enum class RngPurpose : uint32_t {
  kPromptClass = 1,     // class of a stream index (prompt stream)
  kPromptTemplate = 2,  // template choice
  kPromptScene = 3,     // Places365 scene choice
  kNoise = 4,           // initial latent noise of a generated image
  kAugment = 5,         // augmentation parameters (sub-key: crop number)
  kShuffle = 6,         // epoch shuffles of real datasets
  kInit = 7,            // model initialization
  kDropout = 8,
  kDinoAugment = 9,     // DINO multi-crop parameters (sub-key: crop number, globals first)
  kSdTrain = 10,        // training a text-to-image model (index: step; sub-key: which draw)
};

struct Philox4x32 {
  using Counter = std::array<uint32_t, 4>;
  using Key = std::array<uint32_t, 2>;

  static Counter round(const Counter& c, const Key& k) {
    constexpr uint64_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
    const uint64_t p0 = kM0 * c[0], p1 = kM1 * c[2];
    return {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1], uint32_t(p0)};
  }
  static Counter hash(Counter c, Key k) {
    constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
    for (int i = 0; i < 10; ++i) {
      c = round(c, k);
      k[0] += kW0;
      k[1] += kW1;
    }
    return c;
  }
};

// A stream of random numbers for one (seed, index, purpose, sub) key. Cheap to construct: make
// one wherever a decision is taken instead of passing generators around.
class CounterRng {
 public:
  // Counter layout: words 0-1 the image index, word 2 the purpose (low 8 bits) and the sub-key
  // (high 24 bits, e.g. the crop number), word 3 the block number inside this stream.
  CounterRng(uint64_t seed, uint64_t index, RngPurpose purpose, uint32_t sub = 0)
      : key_{uint32_t(seed), uint32_t(seed >> 32)},
        ctr_{uint32_t(index), uint32_t(index >> 32), (uint32_t(purpose) & 0xFFu) | (sub << 8), 0} {}

  // Uniform 32-bit word.
  uint32_t next_u32() {
    if (pos_ == 4) refill();
    return block_[pos_++];
  }
  uint64_t next_u64() { return (uint64_t(next_u32()) << 32) | next_u32(); }
  // Uniform in [0, 1) with 24 bits, exact in float.
  float uniform() { return float(next_u32() >> 8) * (1.0f / 16777216.0f); }
  // Uniform in [0, 1) with 53 bits.
  double uniform_double() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Unbiased integer in [0, n) by Lemire's multiply-shift with rejection.
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next_u64(); while (x >= limit);
    return x % n;
  }
  bool bernoulli(double p) { return uniform_double() < p; }
  // Standard normal by Box-Muller; the pair's second value is kept for the next call.
  float normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform_double(), u2 = uniform_double();
    if (u1 < 1e-300) u1 = 1e-300;
    const double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
    spare_ = float(r * std::sin(th));
    has_spare_ = true;
    return float(r * std::cos(th));
  }

 private:
  void refill() {
    block_ = Philox4x32::hash(ctr_, key_);
    ++ctr_[3];
    pos_ = 0;
  }
  Philox4x32::Key key_;
  Philox4x32::Counter ctr_;
  Philox4x32::Counter block_{};
  int pos_ = 4;
  bool has_spare_ = false;
  float spare_ = 0;
};

}  // namespace synth
