// The CUDA backend: kDevice memory is cudaMalloc'd under a hard byte budget (--gpu-mem, so a
// large card can act as a small one); ops are kernels on one compute stream, issued
// asynchronously; small host-side arguments (token ids, positions, page tables) are copied
// to the device before the kernel that reads them, in stream order.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "backend/moe_routing.h"
#include "base/thread_pool.h"

namespace so {

struct CudaBackendOptions {
  int device = 0;
  int64_t memory_budget_bytes = 0;  // kDevice allocations in all; 0: the card's free memory
  int host_threads = 0;  // host attention (the host KV tier); 0: one per physical core
};

// Number of CUDA devices visible, 0 when there is no driver or no GPU (never fails).
int cuda_device_count();

class CudaBackend final : public Backend {
 public:
  static Result<std::unique_ptr<CudaBackend>> create(const CudaBackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override;
  int64_t device_bytes_in_use() const { return device_bytes_.load(); }
  int64_t memory_budget_bytes() const { return budget_bytes_; }

  Result<Buffer> allocate(size_t bytes, MemoryKind kind) override;
  void free(void* data, size_t bytes, MemoryKind kind) override;
  void copy_to_device(void* destination, const void* source, size_t bytes) override;
  void copy_to_host(void* destination, const void* source, size_t bytes) override;
  void copy_2d(void* destination, size_t destination_pitch, const void* source, size_t source_pitch, size_t width,
               size_t height) override;
  std::unique_ptr<Stream> create_stream(StreamRole role) override;
  bool reads_host_memory() const override { return false; }
  std::shared_ptr<Event> record_compute() override;
  void wait_compute(const Event& event) override;
  void synchronize() override;
  int64_t device_memory_free() const override { return budget_bytes_ - device_bytes_.load(); }
  int64_t device_bytes_peak() const override { return device_bytes_peak_.load(); }

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
  // Host threads with the CPU backend's kernels: the KV cache in pinned host memory.
  void host_kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
                     const float* v) override;
  void host_attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                      const AttentionParams& params, const float* q, float* out) override;
  void moe_ffn(const MoeWeights& weights, const float* x, int64_t n_tokens, int64_t dim, int64_t ffn_dim,
               float* out) override;
  void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) override;

  // Small arguments copied to the device, one slot per kind of argument. A slot whose
  // content is unchanged since its last copy is not copied again (a step's positions and
  // page tables are the same for every layer).
  enum class Upload { kTokens, kPositions, kIndices, kSlots, kKvTokens, kPages, kFreqFactors, kMoeWeights, kCount };
  const void* upload(Upload slot, const void* data, size_t bytes);

 private:
  CudaBackend() = default;
  // Device scratch that only grows; contents are stream-ordered like every op's.
  enum ScratchIndex {
    kHalfActivationScratch = 0,  // matmul: activations rounded for cuBLAS
    kQ8Scratch,                  // matmul: Q8 activations
    kMoeRouter,                  // moe_ffn
    kMoeExpertOutputs,
    kMoeGathered,
    kMoeGate,
    kMoeUp,
    kMoeDown,
  };
  void* scratch(int index, size_t bytes);
  // Uploads the per-token KV view of `rows` (positions and page tables).
  void upload_kv_rows(std::span<const AttentionRow> rows, const void** tokens, const void** pages);
  ThreadPool& host_pool();

  int device_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int64_t budget_bytes_ = 0;
  std::atomic<int64_t> device_bytes_{0};
  std::atomic<int64_t> device_bytes_peak_{0};
  int host_threads_ = 0;
  std::unique_ptr<ThreadPool> host_pool_;
  cpu::AttentionScratch host_attention_scratch_;

  struct UploadSlot {
    void* device = nullptr;
    size_t capacity = 0;
    std::vector<uint8_t> last;  // host copy of what the device holds
  };
  UploadSlot uploads_[static_cast<int>(Upload::kCount)];
  struct Scratch {
    void* data = nullptr;
    size_t bytes = 0;
  };
  std::vector<Scratch> scratch_;
  std::vector<float> host_rows_;  // embedding rows dequantized on the host
  // MoE routing on the host: router logits, selected experts and their weights.
  std::vector<float> router_logits_;
  std::vector<int32_t> selected_;
  std::vector<float> route_weights_;
  ExpertGroups groups_;
};

}  // namespace so
