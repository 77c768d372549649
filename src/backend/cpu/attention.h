// CPU attention over the paged KV cache, and the KV store that feeds it.
#pragma once

#include <span>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/ops.h"
#include "base/aligned_buffer.h"
#include "base/thread_pool.h"

namespace so::cpu {

// Per-thread scratch, reused across calls.
struct AttentionScratch {
  std::vector<AlignedBuffer> per_thread;
};

// Query tokens of one row handled by one task; bounds scratch size and gives
// parallelism to long prefills.
constexpr int kAttentionQueryChunk = 16;

void kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
              const float* v, ThreadPool& pool);

void attention(Isa isa, ThreadPool& pool, AttentionScratch& scratch, const KvGeometry& geometry, int layer,
               std::span<const AttentionRow> rows, const AttentionParams& params, const float* q, float* out);

// One task's work; defined per ISA (attention.cpp, attention_avx2.cpp).
struct AttentionTask {
  const KvGeometry* geometry;
  int layer;
  const AttentionRow* row;
  const AttentionParams* params;
  int kv_head;
  int first_query;  // within the row
  int n_queries;
  const float* q;   // (n_tokens, n_heads, head_dim) of the whole step
  float* out;       // same shape
};
void attention_task_scalar(const AttentionTask& task, AlignedBuffer& scratch);
void attention_task_avx2(const AttentionTask& task, AlignedBuffer& scratch);
void attention_task_avx512(const AttentionTask& task, AlignedBuffer& scratch);
using AttentionTaskFn = void (*)(const AttentionTask&, AlignedBuffer&);

// attention() with a given task kernel (all give the same bits; tests run each).
void attention_with(AttentionTaskFn run, ThreadPool& pool, AttentionScratch& scratch, const KvGeometry& geometry,
                    int layer, std::span<const AttentionRow> rows, const AttentionParams& params, const float* q,
                    float* out);

// out[i] = detail::exp_for_softmax(x[i]) computed 8 lanes at a time (tests compare the two).
void softmax_exp_avx2(const float* x, float* out, int n);

}  // namespace so::cpu
