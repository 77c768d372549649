// The attention loop, written once and instantiated per ISA with a Vec policy providing:
//   void scores(const float* const* q, int n_q, const uint16_t* keys, int n, int head_dim, float* const* out)
//       out[v][j] = dot16(q[v], keys[j]) for v < n_q <= kQueryBlock, keys (n, head_dim) f16 and
//       contiguous; q rounded to f16 values
//   void softmax(float* s, int first, int end, float scale, const float* sink)
//       s[first, end) = f16(softmax(scale * s)), see softmax_reference
//   void values(float* lanes, const float* p, const uint16_t* rows, int t, int n, int head_dim)
//       keys t..t+n-1 (rows contiguous, p indexed by position): lanes[k % 16] += p[k] * rows[k - t]
//   void reduce(const float* lanes, int head_dim, float* out)   out[d] = sum16 over lanes[.][d]
// Every policy gives the same bits: the order of every float operation is fixed here.
// Included by attention.cpp, attention_avx2.h (AVX2 and AVX-512 policies) and tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cpu/attention.h"
#include "tensor/fp16.h"

namespace so::cpu::detail {

// note: the numerics are llama.cpp's CPU attention when it runs a prompt (its default,
// non-flash path on an AVX-512 build): q and the probabilities rounded to f16 (K and V
// are f16 already), each dot product in 16 lanes reduced by halves (tinyBLAS), the
// softmax's exponentials summed 16 at a time in float and the chunks in double. A value
// dot's lanes are positions mod 16, as llama.cpp's are KV cells from 0. Matching that
// order makes the engine's logits llama.cpp's bit for bit where everything else matches;
// any other order leaves them at the noise floor of activation rounding (a few % of
// near-tie argmaxes). Every query vector sees the same operation sequence however the
// step is batched, which keeps attention batch-invariant.
constexpr int kLanes = 16;

// Query vectors whose scores one pass over the keys computes (they share each key's loads).
constexpr int kQueryBlock = 4;

// Sum of 16 lanes by halves: 8 pairs (i, i + 8), 4 pairs, then (0 + 2) + (1 + 3).
inline float reduce16(const float* x) {
  float h[8], q[4];
  for (int i = 0; i < 8; ++i) h[i] = x[i] + x[i + 8];
  for (int i = 0; i < 4; ++i) q[i] = h[i] + h[i + 4];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// e^x for x <= 0 (scores minus their max), as llama.cpp's AVX-512 softmax computes it:
// x = n ln2 + b, e^b by a degree-5 polynomial (ARM's optimized-routines expf), times 2^n
// rounded once. Below n = -192 it is 0.
inline float exp_for_softmax(float x) {
  const float shift = 0x1.8p23f;  // adding it rounds to an integer
  const float n = std::fma(x, 0x1.715476p+0f, shift) - shift;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (!(std::fabs(n) <= 192.0f)) return n > 0.0f ? INFINITY : 0.0f;
  return std::ldexp(j, static_cast<int>(n));
}

inline float dot_reference(const float* q, const uint16_t* key, int head_dim) {
  float lanes[kLanes] = {};
  const int whole = head_dim / kLanes * kLanes;
  for (int d = 0; d < whole; ++d) lanes[d % kLanes] = std::fma(q[d], fp16_to_fp32_fast(key[d]), lanes[d % kLanes]);
  float sum = reduce16(lanes);
  for (int d = whole; d < head_dim; ++d) sum = std::fma(q[d], fp16_to_fp32_fast(key[d]), sum);
  return sum;
}

// Scaled softmax over s[first, end) (indexed by position), probabilities rounded to f16.
// A sink is one more logit (unscaled) in the normalization, with no value.
inline void softmax_reference(float* s, int first, int end, float scale, const float* sink) {
  float max_score = sink != nullptr ? *sink : -INFINITY;
  for (int t = first; t < end; ++t) {
    s[t] *= scale;
    max_score = std::max(max_score, s[t]);
  }
  double sum = 0.0;
  for (int chunk = first / kLanes * kLanes; chunk < end; chunk += kLanes) {
    float e[kLanes] = {};
    for (int t = std::max(chunk, first); t < std::min(chunk + kLanes, end); ++t) {
      e[t - chunk] = s[t] = exp_for_softmax(s[t] - max_score);
    }
    sum += reduce16(e);
  }
  if (sink != nullptr) sum += std::exp(*sink - max_score);
  const float inverse = static_cast<float>(1.0 / sum);
  for (int t = first; t < end; ++t) s[t] = fp16_to_fp32(fp32_to_fp16(s[t] * inverse));
}

inline void values_reference(float* lanes, const float* p, const uint16_t* rows, int t, int n, int head_dim) {
  for (int k = t; k < t + n; ++k) {
    float* lane = lanes + (k % kLanes) * head_dim;
    const uint16_t* row = rows + int64_t(k - t) * head_dim;
    for (int d = 0; d < head_dim; ++d) lane[d] = std::fma(p[k], fp16_to_fp32_fast(row[d]), lane[d]);
  }
}

inline void reduce_reference(const float* lanes, int head_dim, float* out) {
  for (int d = 0; d < head_dim; ++d) {
    float column[kLanes];
    for (int m = 0; m < kLanes; ++m) column[m] = lanes[m * head_dim + d];
    out[d] = reduce16(column);
  }
}

template <typename Vec>
void run_attention_task(const AttentionTask& task, AlignedBuffer& scratch) {
  const KvGeometry& geometry = *task.geometry;
  const AttentionParams& params = *task.params;
  const AttentionRow& row = *task.row;
  const int head_dim = params.head_dim;
  const int group = params.n_heads / params.n_kv_heads;  // query heads per kv head
  const int n_vectors = task.n_queries * group;
  const int n_keys = row.kv_start + task.first_query + task.n_queries;  // keys the last query sees
  const int page_tokens = geometry.page_tokens;

  // scratch: q_rounded (n_vectors, head_dim) | scores (kQueryBlock, n_keys) | lanes (16, head_dim)
  const size_t floats = size_t(n_vectors) * head_dim + size_t(kQueryBlock) * n_keys + size_t(kLanes) * head_dim;
  scratch.resize(floats * sizeof(float));
  float* q_rounded = scratch.as<float>();
  float* scores = q_rounded + size_t(n_vectors) * head_dim;
  float* lanes = scores + size_t(kQueryBlock) * n_keys;

  auto vector_token = [&](int vec) { return row.first_token + task.first_query + vec / group; };
  auto vector_head = [&](int vec) { return task.kv_head * group + vec % group; };
  auto vector_last_key = [&](int vec) { return row.kv_start + task.first_query + vec / group; };

  for (int vec = 0; vec < n_vectors; ++vec) {
    const float* source = task.q + (int64_t(vector_token(vec)) * params.n_heads + vector_head(vec)) * head_dim;
    for (int d = 0; d < head_dim; ++d) q_rounded[vec * head_dim + d] = fp16_to_fp32(fp32_to_fp16(source[d]));
  }

  // Keys and values of a row are contiguous within a page: runs of positions [t, t + n).
  auto for_each_run = [&](int first_visible, int n_visible, bool value, auto&& body) {
    const int64_t offset = geometry.offset(task.layer, value, task.kv_head);
    for (int t = first_visible; t < n_visible;) {
      const int n = std::min(n_visible, (t / page_tokens + 1) * page_tokens) - t;
      const auto* page = static_cast<const uint8_t*>(row.pages[t / page_tokens]);
      body(t, n, reinterpret_cast<const uint16_t*>(page + offset) + int64_t(t % page_tokens) * head_dim);
      t += n;
    }
  };

  // note: every query vector's scores, softmax and values take the same operations over
  // exactly the keys it sees, so its result is the same however many queries share the task
  // (batch invariance); a block of vectors computes scores over the union of their keys, and each
  // uses its own.
  auto first_key = [&](int vec) {
    return params.window > 0 ? std::max(0, vector_last_key(vec) + 1 - params.window) : 0;
  };
  for (int block = 0; block < n_vectors; block += kQueryBlock) {
    const int n_q = std::min(kQueryBlock, n_vectors - block);
    const float* qs[kQueryBlock];
    float* rows[kQueryBlock];
    int low = n_keys, high = 0;
    for (int i = 0; i < n_q; ++i) {
      qs[i] = q_rounded + size_t(block + i) * head_dim;
      rows[i] = scores + size_t(i) * n_keys;
      low = std::min(low, first_key(block + i));
      high = std::max(high, vector_last_key(block + i) + 1);
    }
    for_each_run(low, high, false, [&](int t, int n, const uint16_t* keys) {
      float* out[kQueryBlock];
      for (int i = 0; i < n_q; ++i) out[i] = rows[i] + t;
      Vec::scores(qs, n_q, keys, n, head_dim, out);
    });
    for (int i = 0; i < n_q; ++i) {
      const int vec = block + i;
      const int visible = vector_last_key(vec) + 1, first = first_key(vec);
      const float* sink = params.sinks != nullptr ? params.sinks + vector_head(vec) : nullptr;
      Vec::softmax(rows[i], first, visible, params.scale, sink);
      std::fill(lanes, lanes + kLanes * head_dim, 0.0f);
      for_each_run(first, visible, true, [&](int t, int n, const uint16_t* values) {
        Vec::values(lanes, rows[i], values, t, n, head_dim);
      });
      Vec::reduce(lanes, head_dim,
                  task.out + (int64_t(vector_token(vec)) * params.n_heads + vector_head(vec)) * head_dim);
    }
  }
}

}  // namespace so::cpu::detail
