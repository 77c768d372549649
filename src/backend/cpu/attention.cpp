#include "backend/cpu/attention.h"

#include "backend/cpu/attention_impl.h"
#include "base/check.h"
#include "base/cpu_features.h"
#include "tensor/fp16.h"

namespace so::cpu {
namespace {

struct ScalarVec {
  static void scores(const float* const* q, int n_q, const uint16_t* keys, int n, int head_dim, float* const* out) {
    for (int v = 0; v < n_q; ++v) {
      for (int j = 0; j < n; ++j) out[v][j] = detail::dot_reference(q[v], keys + int64_t(j) * head_dim, head_dim);
    }
  }
  static void softmax(float* s, int first, int end, float scale, const float* sink) {
    detail::softmax_reference(s, first, end, scale, sink);
  }
  static void values(float* lanes, const float* p, const uint16_t* rows, int t, int n, int head_dim) {
    detail::values_reference(lanes, p, rows, t, n, head_dim);
  }
  static void reduce(const float* lanes, int head_dim, float* out) { detail::reduce_reference(lanes, head_dim, out); }
};

}  // namespace

void attention_task_scalar(const AttentionTask& task, AlignedBuffer& scratch) {
  detail::run_attention_task<ScalarVec>(task, scratch);
}

void kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
              const float* v, ThreadPool& pool) {
  SO_CHECK(geometry.dtype == DType::kF16, "the CPU KV cache stores F16");
  const int kv_dim = geometry.n_kv_heads * geometry.head_dim;
  pool.parallel_for(static_cast<int64_t>(rows.size()), [&](int64_t r, int) {
    const AttentionRow& row = rows[r];
    for (int i = 0; i < row.n_tokens; ++i) {
      const int position = row.kv_start + i;
      auto* page = static_cast<uint8_t*>(row.pages[position / geometry.page_tokens]);
      const int64_t slot = int64_t(position % geometry.page_tokens) * geometry.head_dim;
      const int64_t token = row.first_token + i;
      for (int head = 0; head < geometry.n_kv_heads; ++head) {
        auto* key = reinterpret_cast<uint16_t*>(page + geometry.offset(layer, false, head)) + slot;
        auto* value = reinterpret_cast<uint16_t*>(page + geometry.offset(layer, true, head)) + slot;
        const float* k_source = k + token * kv_dim + head * geometry.head_dim;
        const float* v_source = v + token * kv_dim + head * geometry.head_dim;
        for (int d = 0; d < geometry.head_dim; ++d) {
          key[d] = fp32_to_fp16(k_source[d]);
          value[d] = fp32_to_fp16(v_source[d]);
        }
      }
    }
  });
}

void attention_with(AttentionTaskFn run, ThreadPool& pool, AttentionScratch& scratch, const KvGeometry& geometry,
                    int layer, std::span<const AttentionRow> rows, const AttentionParams& params, const float* q,
                    float* out) {
  SO_CHECK_EQ(params.n_heads % params.n_kv_heads, 0);
  SO_CHECK_EQ(params.head_dim, geometry.head_dim);
  scratch.per_thread.resize(pool.n_threads());
  // Tasks: (row, kv_head, chunk of kAttentionQueryChunk queries).
  std::vector<AttentionTask> tasks;
  for (const AttentionRow& row : rows) {
    for (int first = 0; first < row.n_tokens; first += kAttentionQueryChunk) {
      for (int kv_head = 0; kv_head < params.n_kv_heads; ++kv_head) {
        tasks.push_back({&geometry, layer, &row, &params, kv_head, first,
                         std::min(kAttentionQueryChunk, row.n_tokens - first), q, out});
      }
    }
  }
  // Longest rows first so a long prefill doesn't start last.
  std::stable_sort(tasks.begin(), tasks.end(), [](const AttentionTask& a, const AttentionTask& b) {
    return a.row->kv_start + a.first_query > b.row->kv_start + b.first_query;
  });
  pool.parallel_for(static_cast<int64_t>(tasks.size()),
                    [&](int64_t i, int thread) { run(tasks[i], scratch.per_thread[thread]); });
}

void attention(Isa isa, ThreadPool& pool, AttentionScratch& scratch, const KvGeometry& geometry, int layer,
               std::span<const AttentionRow> rows, const AttentionParams& params, const float* q, float* out) {
  AttentionTaskFn run = attention_task_scalar;
  if (isa == Isa::kAvx2) run = cpu_features().avx512() ? attention_task_avx512 : attention_task_avx2;
  attention_with(run, pool, scratch, geometry, layer, rows, params, q, out);
}

}  // namespace so::cpu
