// The attention loop, written once and instantiated per ISA with a Vec policy providing:
//   void scores(const float* q, const uint16_t* keys, int n, int head_dim, float* out)
//       out[j] = q . keys[j], keys (n, head_dim) f16 and contiguous; q rounded to f16 values
//   void values(float* acc, const float* p, const uint16_t* values, int n, int head_dim)
//       acc += sum_j p[j] * values[j], j ascending, values (n, head_dim) f16 and contiguous
//   void softmax(float* s, int n, float scale)  s = f16(softmax(scale * s)), see softmax_reference
// Included only by attention.cpp and attention_avx2.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cpu/attention.h"
#include "tensor/fp16.h"

namespace so::cpu::detail {

// note: numerics follow llama.cpp's default (non-flash) path: q and the softmax
// probabilities are rounded to f16 (K and V are f16 already), products accumulate in
// f32, the softmax sum in double. Every query vector sees the same operation sequence
// however the step is batched, which keeps attention batch-invariant.
// Scaled softmax of one query's scores, probabilities rounded to f16 values. The sum of
// exponentials accumulates in double.
inline void softmax_reference(float* s, int n, float scale) {
  float max_score = -INFINITY;
  for (int t = 0; t < n; ++t) {
    s[t] *= scale;
    max_score = std::max(max_score, s[t]);
  }
  double sum = 0.0;
  for (int t = 0; t < n; ++t) {
    s[t] = std::exp(s[t] - max_score);
    sum += s[t];
  }
  const float inverse = static_cast<float>(1.0 / sum);
  for (int t = 0; t < n; ++t) s[t] = fp16_to_fp32(fp32_to_fp16(s[t] * inverse));
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
  const int score_stride = n_keys + 1;  // room for a sink after the visible keys

  // scratch: q_rounded (n_vectors, head_dim) | scores (n_vectors, score_stride) | acc (n_vectors, head_dim)
  const size_t floats = size_t(n_vectors) * (2 * head_dim + score_stride);
  scratch.resize(floats * sizeof(float));
  float* q_rounded = scratch.as<float>();
  float* scores = q_rounded + size_t(n_vectors) * head_dim;
  float* acc = scores + size_t(n_vectors) * score_stride;

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

  // note: every query vector runs its own loops over exactly the keys it sees, so its
  // result is the same however many queries share the task (batch invariance).
  for (int vec = 0; vec < n_vectors; ++vec) {
    float* s = scores + size_t(vec) * score_stride;
    const int visible = vector_last_key(vec) + 1;
    const int first = params.window > 0 ? std::max(0, visible - params.window) : 0;
    for_each_run(first, visible, false, [&](int t, int n, const uint16_t* keys) {
      Vec::scores(q_rounded + vec * head_dim, keys, n, head_dim, s + t);
    });
    // A sink is one more logit in the softmax (divided here, as the softmax scales every
    // score); its probability goes nowhere.
    const bool sink = params.sinks != nullptr;
    if (sink) s[visible] = params.sinks[vector_head(vec)] / params.scale;
    Vec::softmax(s + first, visible - first + (sink ? 1 : 0), params.scale);  // probabilities rounded to f16
    float* a = acc + size_t(vec) * head_dim;
    std::fill(a, a + head_dim, 0.0f);
    for_each_run(first, visible, true, [&](int t, int n, const uint16_t* values) {
      Vec::values(a, s + t, values, n, head_dim);
    });
  }
  for (int vec = 0; vec < n_vectors; ++vec) {
    float* destination = task.out + (int64_t(vector_token(vec)) * params.n_heads + vector_head(vec)) * head_dim;
    std::copy(acc + vec * head_dim, acc + (vec + 1) * head_dim, destination);
  }
}

}  // namespace so::cpu::detail
