#include <immintrin.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/attention_impl.h"

namespace so::cpu {
namespace {

inline float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

struct Avx2Vec {
  static float dot(const float* q, const uint16_t* k, int n) {
    __m256 acc = _mm256_setzero_ps();
    int d = 0;
    for (; d + 8 <= n; d += 8) {
      const __m256 key = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + d)));
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), key, acc);
    }
    float sum = horizontal_sum(acc);
    for (; d < n; ++d) sum += q[d] * fp16_to_fp32_fast(k[d]);
    return sum;
  }
  static void axpy(float* out, float p, const uint16_t* v, int n) {
    const __m256 weight = _mm256_set1_ps(p);
    int d = 0;
    for (; d + 8 <= n; d += 8) {
      const __m256 value = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + d)));
      _mm256_storeu_ps(out + d, _mm256_fmadd_ps(weight, value, _mm256_loadu_ps(out + d)));
    }
    for (; d < n; ++d) out[d] += p * fp16_to_fp32_fast(v[d]);
  }
};

}  // namespace

void attention_task_avx2(const AttentionTask& task, AlignedBuffer& scratch) {
  detail::run_attention_task<Avx2Vec>(task, scratch);
}

}  // namespace so::cpu
