#include <doctest/doctest.h>

#include <set>

#include "core/rng.hpp"

using synth::CounterRng;
using synth::RngPurpose;

TEST_CASE("counter rng is a pure function of its key") {
  CounterRng a(42, 7, RngPurpose::kAugment, 3), b(42, 7, RngPurpose::kAugment, 3);
  for (int i = 0; i < 100; ++i) CHECK(a.next_u32() == b.next_u32());
  CounterRng c(42, 7, RngPurpose::kAugment, 4), d(42, 8, RngPurpose::kAugment, 3), e(43, 7, RngPurpose::kAugment, 3),
      f(42, 7, RngPurpose::kNoise, 3);
  const uint32_t first = CounterRng(42, 7, RngPurpose::kAugment, 3).next_u32();
  CHECK(c.next_u32() != first);
  CHECK(d.next_u32() != first);
  CHECK(e.next_u32() != first);
  CHECK(f.next_u32() != first);
}

TEST_CASE("philox matches the Random123 known-answer vector") {
  // Random123's kat_vectors: philox4x32_10, counter = key = 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  auto out = synth::Philox4x32::hash({0, 0, 0, 0}, {0, 0});
  CHECK(out[0] == 0x6627e8d5u);
  CHECK(out[1] == 0xe169c58du);
  CHECK(out[2] == 0xbc57ac4cu);
  CHECK(out[3] == 0x9b00dbd8u);
}

TEST_CASE("uniform, below and normal have the right moments") {
  CounterRng r(1, 2, RngPurpose::kNoise);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  int counts[7] = {0};
  for (int i = 0; i < n; ++i) {
    const float u = r.uniform();
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    su += u;
    const double z = r.normal();
    sn += z;
    sn2 += z * z;
    counts[r.below(7)]++;
  }
  CHECK(su / n == doctest::Approx(0.5).epsilon(0.01));
  CHECK(sn / n == doctest::Approx(0.0).epsilon(0.01));
  CHECK(sn2 / n == doctest::Approx(1.0).epsilon(0.01));
  for (int c : counts) CHECK(double(c) / n == doctest::Approx(1.0 / 7).epsilon(0.03));
}
