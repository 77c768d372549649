#include <immintrin.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/exp_avx2.h"

namespace so::cpu {
namespace {

inline float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

inline __m256 round_to_f16(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

inline __m256 load_f16(const uint16_t* source) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(source)));
}

// Lane j of the result: the sum of the 8 lanes of acc[j].
inline __m256 transpose_sum(const __m256 acc[8]) {
  const __m256 s01 = _mm256_hadd_ps(acc[0], acc[1]), s23 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 s45 = _mm256_hadd_ps(acc[4], acc[5]), s67 = _mm256_hadd_ps(acc[6], acc[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

struct Avx2Vec {
  static float dot(const float* q, const uint16_t* k, int n) {
    __m256 acc = _mm256_setzero_ps();
    int d = 0;
    for (; d + 8 <= n; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load_f16(k + d), acc);
    float sum = horizontal_sum(acc);
    for (; d < n; ++d) sum += q[d] * fp16_to_fp32_fast(k[d]);
    return sum;
  }
  static void scores(const float* q, const uint16_t* keys, int n, int head_dim, float* out) {
    int j = 0;
    if (head_dim % 8 == 0) {
      // Eight keys at a time, one accumulator each, summed across lanes together.
      for (; j + 8 <= n; j += 8) {
        __m256 acc[8];
        for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
        const uint16_t* block = keys + int64_t(j) * head_dim;
        for (int d = 0; d < head_dim; d += 8) {
          const __m256 query = _mm256_loadu_ps(q + d);
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(query, load_f16(block + i * head_dim + d), acc[i]);
        }
        _mm256_storeu_ps(out + j, transpose_sum(acc));
      }
    }
    for (; j < n; ++j) out[j] = dot(q, keys + int64_t(j) * head_dim, head_dim);
  }
  static void values(float* acc, const float* p, const uint16_t* values, int n, int head_dim) {
    int d = 0;
    // Up to 64 output lanes stay in registers while the positions stream by.
    for (; d + 64 <= head_dim; d += 64) values_lanes<8>(acc + d, p, values + d, n, head_dim);
    for (; d + 8 <= head_dim; d += 8) values_lanes<1>(acc + d, p, values + d, n, head_dim);
    for (; d < head_dim; ++d) {
      for (int j = 0; j < n; ++j) acc[d] += p[j] * fp16_to_fp32_fast(values[int64_t(j) * head_dim + d]);
    }
  }
  template <int kRegisters>
  static void values_lanes(float* acc, const float* p, const uint16_t* values, int n, int head_dim) {
    __m256 sum[kRegisters];
    for (int r = 0; r < kRegisters; ++r) sum[r] = _mm256_loadu_ps(acc + 8 * r);
    for (int j = 0; j < n; ++j) {
      const __m256 weight = _mm256_set1_ps(p[j]);
      const uint16_t* value = values + int64_t(j) * head_dim;
#pragma GCC unroll 8
      for (int r = 0; r < kRegisters; ++r) sum[r] = _mm256_fmadd_ps(weight, load_f16(value + 8 * r), sum[r]);
    }
    for (int r = 0; r < kRegisters; ++r) _mm256_storeu_ps(acc + 8 * r, sum[r]);
  }
  static void softmax(float* s, int n, float scale) {
    const __m256 scale8 = _mm256_set1_ps(scale);
    __m256 max8 = _mm256_set1_ps(-INFINITY);
    int t = 0;
    for (; t + 8 <= n; t += 8) {
      const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(s + t), scale8);
      _mm256_storeu_ps(s + t, scaled);
      max8 = _mm256_max_ps(max8, scaled);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, max8);
    float max_score = *std::max_element(lanes, lanes + 8);
    for (int tail = t; tail < n; ++tail) {
      s[tail] *= scale;
      max_score = std::max(max_score, s[tail]);
    }
    // Sum of exponentials in double, lane-wise, then the tail.
    const __m256 max_broadcast = _mm256_set1_ps(max_score);
    __m256d sum_low = _mm256_setzero_pd(), sum_high = _mm256_setzero_pd();
    for (t = 0; t + 8 <= n; t += 8) {
      const __m256 e = detail::exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + t), max_broadcast));
      _mm256_storeu_ps(s + t, e);
      sum_low = _mm256_add_pd(sum_low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      sum_high = _mm256_add_pd(sum_high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    alignas(32) double sums[4];
    _mm256_store_pd(sums, _mm256_add_pd(sum_low, sum_high));
    double sum = (sums[0] + sums[1]) + (sums[2] + sums[3]);
    for (int tail = t; tail < n; ++tail) {
      alignas(32) float one[8] = {s[tail] - max_score};
      _mm256_store_ps(one, detail::exp_avx2(_mm256_load_ps(one)));
      s[tail] = one[0];
      sum += s[tail];
    }
    const float inverse = static_cast<float>(1.0 / sum);
    const __m256 inverse8 = _mm256_set1_ps(inverse);
    for (t = 0; t + 8 <= n; t += 8) {
      _mm256_storeu_ps(s + t, round_to_f16(_mm256_mul_ps(_mm256_loadu_ps(s + t), inverse8)));
    }
    for (; t < n; ++t) s[t] = fp16_to_fp32(fp32_to_fp16(s[t] * inverse));
  }
};

}  // namespace

void attention_task_avx2(const AttentionTask& task, AlignedBuffer& scratch) {
  detail::run_attention_task<Avx2Vec>(task, scratch);
}

}  // namespace so::cpu
