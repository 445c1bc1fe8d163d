// DINO multi-crop kernels; see dino_crop.cuh for the design, the cost model and the contract
// (src/augment/dino_cpu.hpp), which every device function below mirrors step by step.
#include "dino_crop.cuh"

#include <cuda_fp16.h>

#include <cmath>

namespace synth::kernels {
namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Per crop: x and y weight tables (size x max_taps floats each), then start/count per output
// column and row (4 x size ints).
__host__ __device__ size_t table_floats(int size, int max_taps) { return size_t(2) * size * max_taps + size_t(4) * size; }

struct Norm {
  float mean[3], std[3];
};

// Pillow's / ATen's antialiasing cubic kernel, a = -0.5.
__device__ __forceinline__ float cubic_aa(float x) {
  const float a = -0.5f;
  x = fabsf(x);
  if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  if (x < 2.0f) return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
  return 0.0f;
}

__device__ __forceinline__ float clamp01(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }
__device__ __forceinline__ float gray_of(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

// ATen _compute_indices_weights_aa for output index i of an in -> out resample.
__device__ void make_taps(int in, int out, int i, int max_taps, float* w, int* start, int* count) {
  const float scale = float(in) / float(out);
  const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
  const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  const float center = scale * (float(i) + 0.5f);
  const int xmin = max(int(center - support + 0.5f), 0);
  const int xsize = min(min(int(center + support + 0.5f), in) - xmin, max_taps);
  float* wi = w + size_t(i) * max_taps;
  float total = 0.0f;
  for (int j = 0; j < xsize; ++j) {
    wi[j] = cubic_aa((float(j + xmin) - center + 0.5f) * invscale);
    total += wi[j];
  }
  if (total != 0.0f)
    for (int j = 0; j < xsize; ++j) wi[j] /= total;
  start[i] = xmin;
  count[i] = xsize;
}

// torchvision _rgb2hsv -> shift -> _hsv2rgb.
__device__ void adjust_hue(float& r, float& g, float& b, float shift) {
  const float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
  const bool eqc = maxc == minc;
  const float cr = maxc - minc;
  const float s = cr / (eqc ? 1.0f : maxc);
  const float crd = eqc ? 1.0f : cr;
  const float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
  float h;
  if (maxc == r) h = bc - gc;
  else if (maxc == g) h = 2.0f + rc - bc;
  else h = 4.0f + gc - rc;
  h = fmodf(h / 6.0f + 1.0f, 1.0f);
  h += shift;
  h -= floorf(h);
  const float v = maxc;
  const float i6 = floorf(h * 6.0f);
  const float f = h * 6.0f - i6;
  const int sector = ((int(i6) % 6) + 6) % 6;
  const float p = clamp01(v * (1.0f - s)), q = clamp01(v * (1.0f - s * f)), t = clamp01(v * (1.0f - s * (1.0f - f)));
  switch (sector) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q;
  }
}

// The blend factors (1 - f) are formed in double as Python does (dino_cpu.cpp blend()).
struct Jitter {
  float brightness, contrast, contrast_rest, saturation, saturation_rest, hue;
};

__device__ void apply_op(int op, const Jitter& j, float contrast_mean, float& r, float& g, float& b) {
  switch (op) {
    case 0:
      r = clamp01(j.brightness * r), g = clamp01(j.brightness * g), b = clamp01(j.brightness * b);
      break;
    case 1: {
      const float m = j.contrast_rest * contrast_mean;
      r = clamp01(j.contrast * r + m), g = clamp01(j.contrast * g + m), b = clamp01(j.contrast * b + m);
      break;
    }
    case 2: {
      const float m = j.saturation_rest * gray_of(r, g, b);
      r = clamp01(j.saturation * r + m), g = clamp01(j.saturation * g + m), b = clamp01(j.saturation * b + m);
      break;
    }
    default: adjust_hue(r, g, b, j.hue);
  }
}

__device__ __forceinline__ void store(float* o, float v) { *o = v; }
__device__ __forceinline__ void store(__half* o, float v) { *o = __float2half_rn(v); }

// Solarize, normalize, store one channels-last pixel.
template <typename OutT>
__device__ void finish(const DinoCropDesc& d, const Norm& n, float r, float g, float b, OutT* o) {
  const float threshold = 128.0f / 255.0f;
  if (d.solarize) {
    r = r >= threshold ? 1.0f - r : r;
    g = g >= threshold ? 1.0f - g : g;
    b = b >= threshold ? 1.0f - b : b;
  }
  store(o + 0, (r - n.mean[0]) / n.std[0]);
  store(o + 1, (g - n.mean[1]) / n.std[1]);
  store(o + 2, (b - n.mean[2]) / n.std[2]);
}

__device__ __forceinline__ int reflect(int x, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  x %= period;
  if (x < 0) x += period;
  return x < n ? x : period - x;
}

// Sum over the block; every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < warps ? partial[lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) partial[0] = s;
  }
  __syncthreads();
  return partial[0];
}

template <typename OutT>
__global__ void __launch_bounds__(1024) dino_crop_kernel(const DinoCropDesc* __restrict__ descs, int S, Norm norm,
                                                         OutT* __restrict__ out, float* __restrict__ tables,
                                                         float* __restrict__ ws0, float* __restrict__ ws1, int max_taps) {
  const DinoCropDesc d = descs[blockIdx.x];
  const int npx = S * S;
  float* wx = tables + size_t(blockIdx.x) * table_floats(S, max_taps);
  float* wy = wx + size_t(S) * max_taps;
  int* xs = reinterpret_cast<int*>(wy + size_t(S) * max_taps);
  int* xc = xs + S;
  int* ys = xc + S;
  int* yc = ys + S;
  for (int i = threadIdx.x; i < S; i += blockDim.x) {
    make_taps(d.box_width, S, i, max_taps, wx, xs, xc);
    make_taps(d.box_height, S, i, max_taps, wy, ys, yc);
  }
  __syncthreads();

  Jitter jit;
  jit.brightness = d.brightness;
  jit.contrast = d.contrast;
  jit.contrast_rest = float(1.0 - double(d.contrast));
  jit.saturation = d.saturation;
  jit.saturation_rest = float(1.0 - double(d.saturation));
  jit.hue = d.hue;
  int contrast_at = -1;
  for (int k = 0; k < d.jitter_ops; ++k)
    if (d.jitter_order[k] == 1 && contrast_at < 0) contrast_at = k;
  const bool blur = d.sigma > 0.0f;
  float* w0 = ws0 + size_t(blockIdx.x) * npx * 3;
  float* w1 = ws1 + size_t(blockIdx.x) * npx * 3;
  OutT* o = out + size_t(blockIdx.x) * npx * 3;
  const uint8_t* src = d.src + (size_t(d.box_top) * d.src_width + d.box_left) * 3;
  const size_t row_bytes = size_t(d.src_width) * 3;

  // Phase 1: resample, flip, clamp, the jitter ops before contrast.
  float gray_sum = 0.0f;
  for (int p = threadIdx.x; p < npx; p += blockDim.x) {
    const int oy = p / S, ox = p - oy * S;
    const int sx = d.flip ? S - 1 - ox : ox;
    const float* wxr = wx + size_t(sx) * max_taps;
    const float* wyr = wy + size_t(oy) * max_taps;
    const int x0 = xs[sx], nx = xc[sx], y0 = ys[oy], ny = yc[oy];
    float r = 0.0f, g = 0.0f, b = 0.0f;
    for (int jy = 0; jy < ny; ++jy) {
      const uint8_t* line = src + size_t(y0 + jy) * row_bytes + size_t(x0) * 3;
      float rr = 0.0f, rg = 0.0f, rb = 0.0f;
      for (int jx = 0; jx < nx; ++jx) {
        const float w = wxr[jx];
        rr += w * (float(line[3 * jx + 0]) / 255.0f);
        rg += w * (float(line[3 * jx + 1]) / 255.0f);
        rb += w * (float(line[3 * jx + 2]) / 255.0f);
      }
      const float w = wyr[jy];
      r += w * rr;
      g += w * rg;
      b += w * rb;
    }
    r = clamp01(r), g = clamp01(g), b = clamp01(b);
    const int before = contrast_at >= 0 ? contrast_at : d.jitter_ops;
    for (int k = 0; k < before; ++k) apply_op(d.jitter_order[k], jit, 0.0f, r, g, b);
    if (contrast_at >= 0) {
      gray_sum += gray_of(r, g, b);
    } else if (d.grayscale) {
      r = g = b = gray_of(r, g, b);
    }
    if (contrast_at >= 0 || blur) {
      w0[3 * p + 0] = r, w0[3 * p + 1] = g, w0[3 * p + 2] = b;
    } else {
      finish(d, norm, r, g, b, o + 3 * p);
    }
  }

  // Phase 2: contrast against the crop's mean gray, the remaining ops, grayscale.
  if (contrast_at >= 0) {
    const float mean = block_sum(gray_sum) / float(npx);
    for (int p = threadIdx.x; p < npx; p += blockDim.x) {
      float r = w0[3 * p + 0], g = w0[3 * p + 1], b = w0[3 * p + 2];
      for (int k = contrast_at; k < d.jitter_ops; ++k) apply_op(d.jitter_order[k], jit, mean, r, g, b);
      if (d.grayscale) r = g = b = gray_of(r, g, b);
      if (blur) {
        w0[3 * p + 0] = r, w0[3 * p + 1] = g, w0[3 * p + 2] = b;
      } else {
        finish(d, norm, r, g, b, o + 3 * p);
      }
    }
  }

  // Phase 3: Gaussian blur, rows then columns, reflect padding; then solarize, normalize, store.
  if (blur) {
    __shared__ float gk[kDinoMaxBlurTaps];
    const int size = 2 * int(ceilf(3.0f * d.sigma)) + 1, half = size / 2;
    if (threadIdx.x == 0) {
      const float h = float(size - 1) * 0.5f;
      float sum = 0.0f;
      for (int i = 0; i < size; ++i) {
        const float t = (-h + float(i)) / d.sigma;
        gk[i] = expf(-0.5f * t * t);
        sum += gk[i];
      }
      for (int i = 0; i < size; ++i) gk[i] /= sum;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < npx; p += blockDim.x) {
      const int y = p / S, x = p - y * S;
      const float* row = w0 + size_t(y) * S * 3;
      float r = 0.0f, g = 0.0f, b = 0.0f;
      for (int j = 0; j < size; ++j) {
        const int xx = reflect(x + j - half, S);
        r += gk[j] * row[3 * xx + 0];
        g += gk[j] * row[3 * xx + 1];
        b += gk[j] * row[3 * xx + 2];
      }
      w1[3 * p + 0] = r, w1[3 * p + 1] = g, w1[3 * p + 2] = b;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < npx; p += blockDim.x) {
      const int y = p / S, x = p - y * S;
      float r = 0.0f, g = 0.0f, b = 0.0f;
      for (int j = 0; j < size; ++j) {
        const float* q = w1 + (size_t(reflect(y + j - half, S)) * S + x) * 3;
        r += gk[j] * q[0];
        g += gk[j] * q[1];
        b += gk[j] * q[2];
      }
      finish(d, norm, r, g, b, o + 3 * p);
    }
  }
}

}  // namespace

int dino_resample_taps(int in, int out) {
  const float scale = float(in) / float(out);
  const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
  return int(std::ceil(support)) * 2 + 1;
}

size_t dino_crop_workspace_bytes(int num_crops, int size, int max_taps) {
  const size_t n = size_t(num_crops > 0 ? num_crops : 0);
  const size_t pixels = n * size_t(size) * size_t(size) * 3;
  return align_up(n * sizeof(DinoCropDesc)) + align_up(n * table_floats(size, max_taps) * sizeof(float)) +
         2 * align_up(pixels * sizeof(float));
}

cudaError_t dino_crop_launch(const DinoCropDesc* descs, int num_crops, int size, const float mean[3],
                             const float std[3], void* out, DinoOutType out_type, void* workspace,
                             size_t workspace_bytes, int max_taps, cudaStream_t stream) {
  if (num_crops == 0) return cudaSuccess;
  if (num_crops < 0 || size < 1 || max_taps < 1 || !descs || !out || !workspace ||
      workspace_bytes < dino_crop_workspace_bytes(num_crops, size, max_taps))
    return cudaErrorInvalidValue;
  for (int i = 0; i < num_crops; ++i) {
    const DinoCropDesc& d = descs[i];
    if (!d.src || d.box_height < 1 || d.box_width < 1 || d.box_top < 0 || d.box_left < 0 ||
        d.box_top + d.box_height > d.src_height || d.box_left + d.box_width > d.src_width ||
        d.jitter_ops < 0 || d.jitter_ops > 4 || 2 * int(std::ceil(3.0f * d.sigma)) + 1 > kDinoMaxBlurTaps ||
        dino_resample_taps(d.box_width, size) > max_taps || dino_resample_taps(d.box_height, size) > max_taps)
      return cudaErrorInvalidValue;
  }
  const size_t n = size_t(num_crops);
  char* base = static_cast<char*>(workspace);
  auto* dev_descs = reinterpret_cast<DinoCropDesc*>(base);
  base += align_up(n * sizeof(DinoCropDesc));
  auto* tables = reinterpret_cast<float*>(base);
  base += align_up(n * table_floats(size, max_taps) * sizeof(float));
  auto* ws0 = reinterpret_cast<float*>(base);
  base += align_up(n * size_t(size) * size * 3 * sizeof(float));
  auto* ws1 = reinterpret_cast<float*>(base);
  // From pageable memory the copy is staged before cudaMemcpyAsync returns, so `descs` may be
  // freed right after this call.
  cudaError_t err = cudaMemcpyAsync(dev_descs, descs, n * sizeof(DinoCropDesc), cudaMemcpyHostToDevice, stream);
  if (err != cudaSuccess) return err;
  Norm norm;
  for (int c = 0; c < 3; ++c) norm.mean[c] = mean[c], norm.std[c] = std[c];
  // Big crops get a full block so a batch of a few hundred global crops still fills the GPU.
  const int threads = size * size >= 16384 ? 1024 : 256;
  if (out_type == DinoOutType::kFloat16)
    dino_crop_kernel<__half><<<num_crops, threads, 0, stream>>>(dev_descs, size, norm, static_cast<__half*>(out),
                                                                tables, ws0, ws1, max_taps);
  else
    dino_crop_kernel<float><<<num_crops, threads, 0, stream>>>(dev_descs, size, norm, static_cast<float*>(out),
                                                               tables, ws0, ws1, max_taps);
  return cudaGetLastError();
}

}  // namespace synth::kernels
