// AVX2/FMA versions of the small ops. Tails shorter than 8 go through the same vector code
// on a zero- (or -inf-) padded copy, so an element's result never depends on where it sits
// relative to a vector boundary: batch invariance for flat buffers of any length.
#include "backend/cpu/ops_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/exp_avx2.h"
#include "backend/cpu/ops_internal.h"

namespace so::cpu::detail {
namespace {

inline __m256 silu_times(__m256 gate, __m256 up) {
  const __m256 denominator = _mm256_add_ps(_mm256_set1_ps(1.0f), exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), gate)));
  return _mm256_mul_ps(_mm256_div_ps(gate, denominator), up);
}

inline double hsum_double(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

// Squares of 8 floats (rounded to f32, as the reference does) added into 2 x 4 doubles.
inline void add_squares(__m256 v, __m256d* low, __m256d* high) {
  const __m256 squares = _mm256_mul_ps(v, v);
  *low = _mm256_add_pd(*low, _mm256_cvtps_pd(_mm256_castps256_ps128(squares)));
  *high = _mm256_add_pd(*high, _mm256_cvtps_pd(_mm256_extractf128_ps(squares, 1)));
}

inline __m256 load_padded(const float* x, int64_t count, float pad) {
  alignas(32) float padded[8] = {pad, pad, pad, pad, pad, pad, pad, pad};
  std::memcpy(padded, x, count * sizeof(float));
  return _mm256_load_ps(padded);
}

inline void store_partial(float* out, __m256 v, int64_t count) {
  alignas(32) float padded[8];
  _mm256_store_ps(padded, v);
  std::memcpy(out, padded, count * sizeof(float));
}

}  // namespace

void rmsnorm_avx2(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) {
  const int64_t n_full = dim / 8 * 8, tail = dim - n_full;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * dim;
    float* out_row = out + r * dim;
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    for (int64_t i = 0; i < n_full; i += 8) add_squares(_mm256_loadu_ps(row + i), &low, &high);
    if (tail) add_squares(load_padded(row + n_full, tail, 0.0f), &low, &high);
    const float mean = static_cast<float>(hsum_double(_mm256_add_pd(low, high)) / static_cast<double>(dim));
    const __m256 scale = _mm256_set1_ps(1.0f / std::sqrt(mean + eps));
    // (x * scale) * w, in the reference's order: elementwise products round the same way.
    for (int64_t i = 0; i < n_full; i += 8) {
      _mm256_storeu_ps(out_row + i,
                       _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(row + i), scale), _mm256_loadu_ps(weight + i)));
    }
    if (tail) {
      const __m256 v = _mm256_mul_ps(_mm256_mul_ps(load_padded(row + n_full, tail, 0.0f), scale),
                                     load_padded(weight + n_full, tail, 0.0f));
      store_partial(out_row + n_full, v, tail);
    }
  }
}

void rope_avx2(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
               const RopeParams& params) {
  check_rope_params(params, head_dim);
  const float theta_scale = std::pow(params.theta_base, -2.0f / static_cast<float>(params.n_rot));
  const RopeCorrectionDims corr = params.ext_factor != 0.0f ? rope_correction_dims(params) : RopeCorrectionDims{};
  const int half = params.n_rot / 2;
  // note: the angles come from the reference's scalar code (cosf/sinf), so rope is bit-exact
  // with the reference; only the rotation, a product and a fused multiply-add per element, is vectorized.
  alignas(32) float cos_sin[512];
  std::vector<float> cos_sin_heap;
  float* angles = cos_sin;
  if (params.n_rot > 512) {
    cos_sin_heap.resize(params.n_rot);
    angles = cos_sin_heap.data();
  }
  std::vector<float> cos_neox, sin_neox;
  for (size_t t = 0; t < positions.size(); ++t) {
    rope_cos_sin(params, corr, theta_scale, positions[t], angles);
    for (int64_t h = 0; h < n_heads; ++h) {
      float* head = x + (t * n_heads + h) * head_dim;
      if (params.style == RopeStyle::kNeox && half % 8 == 0) {
        for (int i = 0; i < half; i += 8) {
          // de-interleave 8 (cos, sin) pairs
          const __m256 a = _mm256_loadu_ps(angles + 2 * i), b = _mm256_loadu_ps(angles + 2 * i + 8);
          const __m256 even = _mm256_shuffle_ps(a, b, 0x88), odd = _mm256_shuffle_ps(a, b, 0xDD);
          const __m256 c = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
          const __m256 s = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), 0xD8));
          const __m256 x0 = _mm256_loadu_ps(head + i), x1 = _mm256_loadu_ps(head + i + half);
          _mm256_storeu_ps(head + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
          _mm256_storeu_ps(head + i + half, _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
        }
      } else if (params.style == RopeStyle::kNormal && params.n_rot % 8 == 0) {
        for (int i = 0; i < params.n_rot; i += 8) {
          // 4 pairs (x0, x1) against 4 (cos, sin): out = (x0 c - x1 s, x0 s + x1 c), fused as
          // rope_rotate_head's
          const __m256 v = _mm256_loadu_ps(head + i), cs = _mm256_loadu_ps(angles + i);
          const __m256 c = _mm256_moveldup_ps(cs), s = _mm256_movehdup_ps(cs);
          const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // (x1, x0)
          const __m256 even = _mm256_fmsub_ps(v, c, _mm256_mul_ps(swapped, s));
          const __m256 odd = _mm256_fmadd_ps(swapped, s, _mm256_mul_ps(v, c));
          _mm256_storeu_ps(head + i, _mm256_blend_ps(even, odd, 0xAA));
        }
      } else {
        rope_rotate_head(head, angles, params);
      }
    }
  }
}

void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n) {
  const int64_t n_full = n / 8 * 8, tail = n - n_full;
  for (int64_t i = 0; i < n_full; i += 8) {
    _mm256_storeu_ps(out + i, silu_times(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (tail) {
    store_partial(out + n_full,
                  silu_times(load_padded(gate + n_full, tail, 0.0f), load_padded(up + n_full, tail, 0.0f)), tail);
  }
}

void softmax_avx2(float* x, int64_t n_rows, int64_t n) {
  const int64_t n_full = n / 8 * 8, tail = n - n_full;
  for (int64_t r = 0; r < n_rows; ++r) {
    float* row = x + r * n;
    __m256 max = _mm256_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n_full; i += 8) max = _mm256_max_ps(max, _mm256_loadu_ps(row + i));
    if (tail) max = _mm256_max_ps(max, load_padded(row + n_full, tail, -INFINITY));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(max), _mm256_extractf128_ps(max, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const __m256 row_max = _mm256_set1_ps(_mm_cvtss_f32(m));
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    auto exp_and_sum = [&](__m256 v) {
      const __m256 e = exp_avx2(_mm256_sub_ps(v, row_max));
      low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
      return e;
    };
    for (int64_t i = 0; i < n_full; i += 8) _mm256_storeu_ps(row + i, exp_and_sum(_mm256_loadu_ps(row + i)));
    if (tail) store_partial(row + n_full, exp_and_sum(load_padded(row + n_full, tail, -INFINITY)), tail);
    const __m256 inverse = _mm256_set1_ps(static_cast<float>(1.0 / hsum_double(_mm256_add_pd(low, high))));
    for (int64_t i = 0; i < n_full; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inverse));
    for (int64_t i = n_full; i < n; ++i) row[i] *= _mm256_cvtss_f32(inverse);  // a plain product: same in any width
  }
}

void argmax_avx2(const float* x, int64_t n_rows, int64_t n, int32_t* out) {
  const int64_t n_full = n / 8 * 8;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * n;
    // The reference keeps index 0 while nothing compares greater, so NaNs are never chosen
    // except a NaN at index 0, which nothing beats.
    if (std::isnan(row[0])) {
      out[r] = 0;
      continue;
    }
    // note: max_ps returns its second operand when either is NaN, so NaNs in the data drop out.
    __m256 max = _mm256_set1_ps(row[0]);
    for (int64_t i = 0; i < n_full; i += 8) max = _mm256_max_ps(_mm256_loadu_ps(row + i), max);
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(max), _mm256_extractf128_ps(max, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    float best = _mm_cvtss_f32(m);
    for (int64_t i = n_full; i < n; ++i) best = row[i] > best ? row[i] : best;
    int64_t index = 0;
    while (!(row[index] == best)) ++index;  // the first index holding the max
    out[r] = static_cast<int32_t>(index);
  }
}

}  // namespace so::cpu::detail
