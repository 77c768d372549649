// AVX-512 attention: the AVX2 policy with its two dot products 16 lanes wide, where one zmm
// holds exactly the 16 lanes of the shared order (attention_impl.h), so the results are the
// AVX2 kernel's bit for bit.
#include "backend/cpu/attention_avx2.h"

// note: GCC 12's AVX-512 headers build convert/extract intrinsics on _mm*_undefined_*(), which
// trips -W(maybe-)uninitialized once they are inlined; nothing here reads undefined lanes.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace so::cpu {
namespace {

using detail::kLanes;

inline __m512 load_f16x16(const uint16_t* source) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(source)));
}

// reduce16's first step on one zmm: lanes (i, i + 8).
inline __m256 halves_added(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}

// Keys per register pass of the value lanes: the rows' cache lines a pass reads (one each) stay
// in L1 for the next 16 dims, which share them.
constexpr int kSpanKeys = 256;

struct Avx512Vec : detail::avx2::Avx2Vec {
  // Scores of kQ queries with kKeys keys from `block` (kQ x kKeys a multiple of 8): each key is
  // converted once for its kQ dot products; the sums reduce 8 at a time, a query's keys adjacent.
  template <int kQ, int kKeys>
  static void key_block(const float* const* q, const uint16_t* block, int head_dim, float* const* out, int j) {
    __m512 acc[kQ][kKeys];
    for (int v = 0; v < kQ; ++v)
      for (int kb = 0; kb < kKeys; ++kb) acc[v][kb] = _mm512_setzero_ps();
    for (int d = 0; d < head_dim; d += kLanes) {
#pragma GCC unroll 8
      for (int kb = 0; kb < kKeys; ++kb) {
        const __m512 key = load_f16x16(block + kb * head_dim + d);
#pragma GCC unroll 4
        for (int v = 0; v < kQ; ++v) acc[v][kb] = _mm512_fmadd_ps(key, _mm512_loadu_ps(q[v] + d), acc[v][kb]);
      }
    }
    __m256 h[kQ * kKeys];
    for (int v = 0; v < kQ; ++v)
      for (int kb = 0; kb < kKeys; ++kb) h[v * kKeys + kb] = halves_added(acc[v][kb]);
    for (int group = 0; group < kQ * kKeys / 8; ++group) {
      const __m256 sums = detail::avx2::horizontal_sums8(h + 8 * group);
      if constexpr (kKeys >= 8) {
        _mm256_storeu_ps(out[group] + j, sums);
      } else {  // kKeys == 4: two queries per group
        _mm_storeu_ps(out[2 * group] + j, _mm256_castps256_ps128(sums));
        _mm_storeu_ps(out[2 * group + 1] + j, _mm256_extractf128_ps(sums, 1));
      }
    }
  }
  template <int kQ, int kKeys>
  static void score_rows(const float* const* q, const uint16_t* keys, int n, int head_dim, float* const* out) {
    int j = 0;
    for (; j + kKeys <= n; j += kKeys) key_block<kQ, kKeys>(q, keys + int64_t(j) * head_dim, head_dim, out, j);
    for (; j < n; ++j)
      for (int v = 0; v < kQ; ++v) out[v][j] = Avx2Vec::dot(q[v], keys + int64_t(j) * head_dim, head_dim);
  }
  static void scores(const float* const* q, int n_q, const uint16_t* keys, int n, int head_dim, float* const* out) {
    if (head_dim % kLanes != 0) return Avx2Vec::scores(q, n_q, keys, n, head_dim, out);
    if (n_q == 4) return score_rows<4, 4>(q, keys, n, head_dim, out);
    int v = 0;
    for (; v + 2 <= n_q; v += 2) score_rows<2, 8>(q + v, keys, n, head_dim, out + v);
    if (v < n_q) score_rows<1, 8>(q + v, keys, n, head_dim, out + v);
  }

  // All 16 lanes of 16 dims stay in registers across a span of whole chunks of keys; the keys
  // before the first whole chunk and after the last go one at a time (in order: each lane's
  // sum runs over its keys ascending).
  static void values(float* lanes, const float* p, const uint16_t* rows, int t, int n, int head_dim) {
    if (head_dim % kLanes != 0) return Avx2Vec::values(lanes, p, rows, t, n, head_dim);
    const int end = t + n;
    int k = t;
    for (; k < end && k % kLanes != 0; ++k) add_key(lanes, p[k], rows + int64_t(k - t) * head_dim, k, head_dim);
    const int whole_end = k + (end - k) / kLanes * kLanes;
    for (int span = k; span < whole_end; span += kSpanKeys) {
      const int span_end = std::min(whole_end, span + kSpanKeys);
      for (int d = 0; d < head_dim; d += kLanes) {
        __m512 acc[kLanes];
        for (int m = 0; m < kLanes; ++m) acc[m] = _mm512_loadu_ps(lanes + m * head_dim + d);
        for (int chunk = span; chunk < span_end; chunk += kLanes) {
          const uint16_t* row = rows + int64_t(chunk - t) * head_dim + d;
#pragma GCC unroll 16
          for (int m = 0; m < kLanes; ++m) {
            acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(p[chunk + m]), load_f16x16(row + m * head_dim), acc[m]);
          }
        }
        for (int m = 0; m < kLanes; ++m) _mm512_storeu_ps(lanes + m * head_dim + d, acc[m]);
      }
    }
    for (k = whole_end; k < end; ++k) add_key(lanes, p[k], rows + int64_t(k - t) * head_dim, k, head_dim);
  }
};

}  // namespace

void attention_task_avx512(const AttentionTask& task, AlignedBuffer& scratch) {
  detail::run_attention_task<Avx512Vec>(task, scratch);
}

}  // namespace so::cpu
