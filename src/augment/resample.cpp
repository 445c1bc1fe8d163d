#include "augment/resample.hpp"

#include <algorithm>
#include <cmath>

namespace synth {
namespace {

// Pillow's / ATen's antialiasing bicubic kernel with a = -0.5 (ATen HelperInterpCubic::aa_filter,
// Pillow Resample.c bicubic_filter).
float cubic_aa(float x) {
  constexpr float a = -0.5f;
  x = std::fabs(x);
  if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  if (x < 2.0f) return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
  return 0.0f;
}

ResampleTaps allocate(int out_size, double support) {
  ResampleTaps t;
  t.taps = int(std::ceil(support)) * 2 + 1;
  t.start.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.w.assign(size_t(out_size) * size_t(t.taps), 0.0f);
  return t;
}

// PIL: centre, bounds, weights and their sum in double; weights stored as float.
ResampleTaps triangle(int in_size, int out_size) {
  const double scale = double(in_size) / out_size;
  const double support = std::max(scale, 1.0);
  ResampleTaps t = allocate(out_size, support);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(int(center - support + 0.5), 0);
    const int hi = std::min(int(center + support + 0.5), in_size);
    std::vector<double> w;
    double total = 0;
    for (int x = lo; x < hi; ++x) {
      w.push_back(std::max(0.0, 1.0 - std::abs((x - center + 0.5) / support)));
      total += w.back();
    }
    int first = lo;
    if (total <= 0) {  // cannot happen for in_size >= 1; kept so a weight sum is never 0
      w.assign(1, 1.0);
      first = std::min(std::max(int(center), 0), in_size - 1);
      total = 1;
    }
    t.start[size_t(o)] = first;
    t.count[size_t(o)] = int(w.size());
    for (size_t j = 0; j < w.size(); ++j) t.w[size_t(o) * size_t(t.taps) + j] = float(float(w[j]) / total);
  }
  return t;
}

// ATen: everything in float.
ResampleTaps cubic(int in_size, int out_size) {
  const float scale = float(in_size) / float(out_size);
  const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
  const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  ResampleTaps t = allocate(out_size, support);
  for (int i = 0; i < out_size; ++i) {
    const float center = scale * (float(i) + 0.5f);
    const int xmin = std::max(int(center - support + 0.5f), 0);
    const int xsize = std::min(int(center + support + 0.5f), in_size) - xmin;
    float* w = &t.w[size_t(i) * size_t(t.taps)];
    float total = 0.0f;
    for (int j = 0; j < xsize; ++j) {
      w[j] = cubic_aa((float(j + xmin) - center + 0.5f) * invscale);
      total += w[j];
    }
    if (total != 0.0f)
      for (int j = 0; j < xsize; ++j) w[j] /= total;
    t.start[size_t(i)] = xmin;
    t.count[size_t(i)] = xsize;
  }
  return t;
}

}  // namespace

ResampleTaps resample_taps(int in_size, int out_size, ResampleFilter filter) {
  return filter == ResampleFilter::kTriangle ? triangle(in_size, out_size) : cubic(in_size, out_size);
}

}  // namespace synth
