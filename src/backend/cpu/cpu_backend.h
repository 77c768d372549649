// The CPU backend: "device memory" is host memory under a byte budget; ops run on the
// calling thread with the thread pool.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/cpu_stream.h"
#include "backend/cpu/kernels.h"
#include "backend/moe_routing.h"
#include "base/compute_gate.h"
#include "base/thread_pool.h"

namespace so {

struct CpuBackendOptions {
  int n_threads = 0;             // 0: one per physical core
  int64_t device_budget_bytes = 0;  // 0: no cap on kDevice allocations (--gpu-mem: a simulated card)
  double sim_link_gbps = 0.0;       // > 0: copy streams move at most this many GB/s (--sim-link-gbps)
};

// Reused buffers of moe_ffn.
// The rows of a MoE step are its (token, choice) pairs grouped by expert (ExpertGroups order).
struct MoeScratch {
  AlignedBuffer router_logits;  // (n_tokens, n_experts)
  AlignedBuffer gathered;       // (n_choices, dim): each row's token
  AlignedBuffer gate;           // (n_choices, ffn_dim)
  AlignedBuffer up;             // (n_choices, ffn_dim)
  AlignedBuffer down;           // (n_choices, dim): each row's expert output
  std::vector<int64_t> row_of_slot;   // (n_tokens * n_used): the row of the token's k-th choice
  std::vector<cpu::MatmulGroup> matmuls;
  std::vector<int32_t> selected;  // (n_tokens, n_used) expert ids
  std::vector<float> weights;     // (n_tokens, n_used)
  ExpertGroups groups;            // the choices by expert
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options);
  ~CpuBackend() override;

  std::string name() const override;
  bool concurrent_ops() const override { return true; }
  int n_threads() const { return pool_->n_threads(); }
  cpu::Isa isa() const { return kernels_.isa(); }
  ThreadPool& pool() { return *pool_; }
  int64_t device_bytes_in_use() const { return device_bytes_.load(); }
  int64_t device_memory_free() const override;
  int64_t device_bytes_peak() const override { return device_bytes_peak_.load(); }

  Result<Buffer> allocate(size_t bytes, MemoryKind kind) override;
  void free(void* data, size_t bytes, MemoryKind kind) override;
  void copy_to_device(void* destination, const void* source, size_t bytes) override;
  void copy_to_host(void* destination, const void* source, size_t bytes) override;
  void copy_2d(void* destination, size_t destination_pitch, const void* source, size_t source_pitch, size_t width,
               size_t height) override;
  std::unique_ptr<Stream> create_stream(StreamRole role) override;

  void matmul(const TensorView& weight, const float* x, int64_t n_rows, float* y) override;
  void matmul_many(std::span<const TensorView> weights, const float* x, int64_t n_rows,
                   std::span<float* const> ys) override;
  void embedding(const TensorView& table, std::span<const int32_t> tokens, float* out) override;
  void rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) override;
  void rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
            const RopeParams& params) override;
  void add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim) override;
  void add(const float* a, const float* b, float* out, int64_t n) override;
  void swiglu(const float* gate, const float* up, float* out, int64_t n) override;
  void geglu(const float* gate, const float* up, float* out, int64_t n) override;
  void scale(float* x, float factor, int64_t n) override;
  void gather_rows(const float* x, std::span<const int32_t> indices, int64_t dim, float* out) override;
  void kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
                const float* v) override;
  void attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                 const AttentionParams& params, const float* q, float* out) override;
  // note: the host is where every op runs; host KV differs from device KV only in which
  // budget its pages count against and in the copies around it (backend/host_attention.h).
  void host_kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
                     const float* v) override {
    kv_store(geometry, layer, rows, k, v);
  }
  void host_attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                      const AttentionParams& params, const float* q, float* out) override {
    attention(geometry, layer, rows, params, q, out);
  }
  void moe_ffn(const MoeWeights& weights, const float* x, int64_t n_tokens, int64_t dim, int64_t ffn_dim,
               float* out) override;
  void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) override;

 private:
  std::unique_ptr<ThreadPool> pool_;
  // Ops from several threads (the draft's beside the target's) take turns; the pool and
  // the scratch below are the holder's.
  ComputeGate gate_;
  cpu::Kernels kernels_;
  cpu::MatmulWorkspace matmul_workspace_;
  cpu::AttentionScratch attention_scratch_;
  MoeScratch moe_scratch_;
  int64_t device_budget_bytes_;
  // --sim-link-gbps: each direction of the simulated PCIe link, shared by its copy streams.
  std::shared_ptr<SimulatedLink> to_device_link_;
  std::shared_ptr<SimulatedLink> to_host_link_;
  std::atomic<int64_t> device_bytes_{0};
  std::atomic<int64_t> device_bytes_peak_{0};
};

}  // namespace so
