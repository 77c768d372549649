// Internal to backend/cpu: the AVX2 attention policy (see attention_impl.h), shared by
// attention_avx2.cpp and attention_avx512.cpp, whose policy widens its dot products. Include only
// from *_avx2/_avx512 files.
#pragma once

#include <immintrin.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/attention_impl.h"

namespace so::cpu::detail::avx2 {
namespace {  // internal linkage: compiled for two ISAs

// reduce16's tree on 8 lanes: (i, i + 4), then (0 + 2) + (1 + 3).
inline float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

// reduce16 of lanes lo (0..7) and hi (8..15).
inline float sum16(__m256 lo, __m256 hi) { return horizontal_sum(_mm256_add_ps(lo, hi)); }

inline __m256 round_to_f16(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

inline __m256 load_f16(const uint16_t* source) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(source)));
}

// The 8-lane sums h[0..7] of 8 dot products, each as horizontal_sum takes it, in key order: the lane
// halves added per key two keys to a register, the 4 sums reordered (0, 2, 1, 3) so that adjacent
// pairs are the tree's (0 + 2), (1 + 3), then two rounds of hadd.
inline __m256 horizontal_sums8(const __m256* h) {
  __m256 pairs[4];
  for (int i = 0; i < 4; ++i) {
    const __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(h[2 * i], h[2 * i + 1], 0x20),
                                      _mm256_permute2f128_ps(h[2 * i], h[2 * i + 1], 0x31));
    pairs[i] = _mm256_permute_ps(sums, 0xD8);  // lanes (0, 2, 1, 3) in each half
  }
  // halves: low holds keys 0, 2, 4, 6, high 1, 3, 5, 7
  const __m256 totals = _mm256_hadd_ps(_mm256_hadd_ps(pairs[0], pairs[1]), _mm256_hadd_ps(pairs[2], pairs[3]));
  return _mm256_permutevar8x32_ps(totals, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// detail::exp_for_softmax on 8 lanes, bit for bit.
inline __m256 exp_for_softmax(__m256 x) {
  const __m256 shift = _mm256_set1_ps(0x1.8p23f);
  const __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift), shift);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                      _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  // j * 2^n rounded once: below n = -100 (a subnormal result) first by 2^(n + 100), exact,
  // then by 2^-100.
  const __m256 deep = _mm256_cmp_ps(n, _mm256_set1_ps(-100.0f), _CMP_LT_OQ);
  const __m256 n1 = _mm256_blendv_ps(n, _mm256_add_ps(n, _mm256_set1_ps(100.0f)), deep);
  const __m256 power = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n1), _mm256_set1_epi32(127)), 23));
  const __m256 rest = _mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(0x1p-100f), deep);
  const __m256 result = _mm256_mul_ps(_mm256_mul_ps(j, power), rest);
  const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  const __m256 out_of_range = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_NLE_UQ);
  const __m256 limit = _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_set1_ps(INFINITY),
                                        _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ));
  return _mm256_blendv_ps(result, limit, out_of_range);
}

// Keys per pass of the register-held value lanes: bounds the rows touched between the
// passes over one row's cache lines, so they are still in L1.
constexpr int kSpanKeys = 128;

struct Avx2Vec {
  static float dot(const float* q, const uint16_t* key, int head_dim) {
    const int whole = head_dim / detail::kLanes * detail::kLanes;
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int d = 0; d < whole; d += 16) {
      lo = _mm256_fmadd_ps(load_f16(key + d), _mm256_loadu_ps(q + d), lo);
      hi = _mm256_fmadd_ps(load_f16(key + d + 8), _mm256_loadu_ps(q + d + 8), hi);
    }
    float sum = sum16(lo, hi);
    for (int d = whole; d < head_dim; ++d) sum = std::fma(q[d], fp16_to_fp32_fast(key[d]), sum);
    return sum;
  }
  // h[kb * kQ + v] = the 8-lane sum (lanes i and i + 8 added) of key kb's dot with query v.
  template <int kQ, int kKeys>
  static void key_block(const float* const* q, const uint16_t* block, int head_dim, __m256* h) {
    __m256 lo[kKeys][kQ], hi[kKeys][kQ];
    for (int kb = 0; kb < kKeys; ++kb)
      for (int v = 0; v < kQ; ++v) lo[kb][v] = hi[kb][v] = _mm256_setzero_ps();
    for (int d = 0; d + detail::kLanes <= head_dim; d += detail::kLanes) {
#pragma GCC unroll 4
      for (int kb = 0; kb < kKeys; ++kb) {
        const __m256 k_lo = load_f16(block + kb * head_dim + d), k_hi = load_f16(block + kb * head_dim + d + 8);
#pragma GCC unroll 2
        for (int v = 0; v < kQ; ++v) {
          lo[kb][v] = _mm256_fmadd_ps(k_lo, _mm256_loadu_ps(q[v] + d), lo[kb][v]);
          hi[kb][v] = _mm256_fmadd_ps(k_hi, _mm256_loadu_ps(q[v] + d + 8), hi[kb][v]);
        }
      }
    }
    for (int kb = 0; kb < kKeys; ++kb)
      for (int v = 0; v < kQ; ++v) h[kb * kQ + v] = _mm256_add_ps(lo[kb][v], hi[kb][v]);
  }
  // Scores of kQ queries against keys in blocks of 8 / kQ, each block's 8 sums reduced together;
  // `block_sums(q, keys, head_dim, h)` fills h[8] for one block.
  template <int kQ, typename BlockSums>
  static int score_blocks(const float* const* q, const uint16_t* keys, int n, int head_dim, float* const* out,
                          BlockSums&& block_sums) {
    constexpr int kKeys = 8 / kQ;
    const int whole = head_dim / detail::kLanes * detail::kLanes;
    int j = 0;
    for (; j + kKeys <= n; j += kKeys) {
      __m256 h[8];
      block_sums(q, keys + int64_t(j) * head_dim, head_dim, h);
      alignas(32) float sums[8];
      _mm256_store_ps(sums, horizontal_sums8(h));
      for (int kb = 0; kb < kKeys; ++kb) {
        const uint16_t* key = keys + int64_t(j + kb) * head_dim;
        for (int v = 0; v < kQ; ++v) {
          float sum = sums[kb * kQ + v];
          for (int d = whole; d < head_dim; ++d) sum = std::fma(q[v][d], fp16_to_fp32_fast(key[d]), sum);
          out[v][j + kb] = sum;
        }
      }
    }
    return j;
  }
  static void scores(const float* const* q, int n_q, const uint16_t* keys, int n, int head_dim, float* const* out) {
    int v = 0;
    for (; v + 2 <= n_q; v += 2) {
      // two queries share each key's loads and conversions: 2 keys x 2 queries per pass
      const int j = score_blocks<2>(q + v, keys, n, head_dim, out + v,
                                    [](const float* const* qs, const uint16_t* block, int dims, __m256* h) {
                                      key_block<2, 2>(qs, block, dims, h);
                                      key_block<2, 2>(qs, block + 2 * dims, dims, h + 4);
                                    });
      for (int k = j; k < n; ++k) {
        for (int i = 0; i < 2; ++i) out[v + i][k] = dot(q[v + i], keys + int64_t(k) * head_dim, head_dim);
      }
    }
    for (; v < n_q; ++v) {
      const int j = score_blocks<1>(q + v, keys, n, head_dim, out + v,
                                    [](const float* const* qs, const uint16_t* block, int dims, __m256* h) {
                                      key_block<1, 4>(qs, block, dims, h);
                                      key_block<1, 4>(qs, block + 4 * dims, dims, h + 4);
                                    });
      for (int k = j; k < n; ++k) out[v][k] = dot(q[v], keys + int64_t(k) * head_dim, head_dim);
    }
  }
  static void softmax(float* s, int first, int end, float scale, const float* sink) {
    const __m256 scale8 = _mm256_set1_ps(scale);
    __m256 max8 = _mm256_set1_ps(sink != nullptr ? *sink : -INFINITY);
    int t = first;
    for (; t + 8 <= end; t += 8) {
      const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(s + t), scale8);
      _mm256_storeu_ps(s + t, scaled);
      max8 = _mm256_max_ps(max8, scaled);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, max8);
    float max_score = *std::max_element(lanes, lanes + 8);
    for (; t < end; ++t) {
      s[t] *= scale;
      max_score = std::max(max_score, s[t]);
    }
    const __m256 max_broadcast = _mm256_set1_ps(max_score);
    double sum = 0.0;
    for (int chunk = first / detail::kLanes * detail::kLanes; chunk < end; chunk += detail::kLanes) {
      if (chunk >= first && chunk + detail::kLanes <= end) {
        const __m256 lo = exp_for_softmax(_mm256_sub_ps(_mm256_loadu_ps(s + chunk), max_broadcast));
        const __m256 hi = exp_for_softmax(_mm256_sub_ps(_mm256_loadu_ps(s + chunk + 8), max_broadcast));
        _mm256_storeu_ps(s + chunk, lo);
        _mm256_storeu_ps(s + chunk + 8, hi);
        sum += sum16(lo, hi);
        continue;
      }
      float e[detail::kLanes] = {};  // a window's or the row's edge: the missing lanes add 0
      for (int k = std::max(chunk, first); k < std::min(chunk + detail::kLanes, end); ++k) {
        e[k - chunk] = s[k] = detail::exp_for_softmax(s[k] - max_score);
      }
      sum += detail::reduce16(e);
    }
    if (sink != nullptr) sum += std::exp(*sink - max_score);
    const float inverse = static_cast<float>(1.0 / sum);
    const __m256 inverse8 = _mm256_set1_ps(inverse);
    for (t = first; t + 8 <= end; t += 8) {
      _mm256_storeu_ps(s + t, round_to_f16(_mm256_mul_ps(_mm256_loadu_ps(s + t), inverse8)));
    }
    for (; t < end; ++t) s[t] = fp16_to_fp32(fp32_to_fp16(s[t] * inverse));
  }
  // lanes[k % 16] += p[k] * row for one key.
  static void add_key(float* lanes, float p, const uint16_t* row, int k, int head_dim) {
    float* lane = lanes + (k % detail::kLanes) * head_dim;
    const __m256 weight = _mm256_set1_ps(p);
    int d = 0;
    for (; d + 8 <= head_dim; d += 8) {
      _mm256_storeu_ps(lane + d, _mm256_fmadd_ps(weight, load_f16(row + d), _mm256_loadu_ps(lane + d)));
    }
    for (; d < head_dim; ++d) lane[d] = std::fma(p, fp16_to_fp32_fast(row[d]), lane[d]);
  }
  static void values(float* lanes, const float* p, const uint16_t* rows, int t, int n, int head_dim) {
    const int end = t + n;
    int k = t;
    for (; k < end && k % detail::kLanes != 0; ++k) add_key(lanes, p[k], rows + int64_t(k - t) * head_dim, k, head_dim);
    const int whole_end = k + (end - k) / detail::kLanes * detail::kLanes;
    const int vector_dims = head_dim / 8 * 8;
    // Whole chunks of 16 keys: for 8 dims and 8 lanes at a time the lanes stay in
    // registers across a span of chunks.
    for (int span = k; span < whole_end; span += kSpanKeys) {
      const int span_end = std::min(whole_end, span + kSpanKeys);
      for (int d = 0; d < vector_dims; d += 8) {
        for (int half = 0; half < 2; ++half) {
          float* lane = lanes + int64_t(half) * 8 * head_dim + d;
          __m256 acc[8];
          for (int i = 0; i < 8; ++i) acc[i] = _mm256_loadu_ps(lane + i * head_dim);
          for (int chunk = span + half * 8; chunk < span_end; chunk += detail::kLanes) {
            const uint16_t* row = rows + int64_t(chunk - t) * head_dim + d;
#pragma GCC unroll 8
            for (int i = 0; i < 8; ++i) {
              acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(p[chunk + i]), load_f16(row + i * head_dim), acc[i]);
            }
          }
          for (int i = 0; i < 8; ++i) _mm256_storeu_ps(lane + i * head_dim, acc[i]);
        }
      }
      for (int d = vector_dims; d < head_dim; ++d) {
        for (int key = span; key < span_end; ++key) {
          float& lane = lanes[(key % detail::kLanes) * head_dim + d];
          lane = std::fma(p[key], fp16_to_fp32_fast(rows[int64_t(key - t) * head_dim + d]), lane);
        }
      }
    }
    for (k = whole_end; k < end; ++k) add_key(lanes, p[k], rows + int64_t(k - t) * head_dim, k, head_dim);
  }
  static void reduce(const float* lanes, int head_dim, float* out) {
    int d = 0;
    for (; d + 8 <= head_dim; d += 8) {
      __m256 h[8];
      for (int i = 0; i < 8; ++i) {
        h[i] = _mm256_add_ps(_mm256_loadu_ps(lanes + i * head_dim + d), _mm256_loadu_ps(lanes + (i + 8) * head_dim + d));
      }
      for (int i = 0; i < 4; ++i) h[i] = _mm256_add_ps(h[i], h[i + 4]);
      _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_add_ps(h[0], h[2]), _mm256_add_ps(h[1], h[3])));
    }
    if (d < head_dim) {
      float tail[detail::kLanes * 8];  // up to 7 dims
      for (int m = 0; m < detail::kLanes; ++m) {
        for (int i = d; i < head_dim; ++i) tail[(i - d) * detail::kLanes + m] = lanes[m * head_dim + i];
      }
      for (int i = d; i < head_dim; ++i) out[i] = detail::reduce16(tail + (i - d) * detail::kLanes);
    }
  }
};

}  // namespace
}  // namespace so::cpu::detail::avx2
