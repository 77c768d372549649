// The backend seam: memory and the op set that model code runs on. One object per
// device; several models (draft and target) may share one. Ops take pointers into this
// backend's memory and are issued in order; model code never dereferences them.
//
// note: ops are coarse where a backend needs freedom in how it schedules work (attention
// over ragged rows, the MoE FFN with tokens grouped by expert).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "backend/ops.h"
#include "backend/stream.h"
#include "base/status.h"
#include "tensor/tensor.h"

namespace so {

enum class MemoryKind {
  kDevice,      // compute memory of the backend (the budgeted arena on the CPU backend)
  kPinnedHost,  // host memory the device copies from at full speed
  kHost,        // ordinary host memory
};

class Backend;

// Owned backend memory (RAII).
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, void* data, size_t bytes, MemoryKind kind)
      : owner_(owner), data_(data), bytes_(bytes), kind_(kind) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  void* data() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }
  MemoryKind kind() const { return kind_; }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  void release();
  Backend* owner_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  MemoryKind kind_ = MemoryKind::kHost;
};

// One MoE layer's weights as views (each expert's matrix may live anywhere).
struct MoeWeights {
  TensorView router;                    // (n_experts, dim)
  std::span<const TensorView> gate;     // n_experts x (ffn_dim, dim)
  std::span<const TensorView> up;       // n_experts x (ffn_dim, dim)
  std::span<const TensorView> down;     // n_experts x (dim, ffn_dim)
  int n_experts_used = 2;
  bool normalize_weights = true;        // renormalize the top-k probabilities to sum 1
  // gpt-oss: biases (null elsewhere) and its clamped SwiGLU.
  const float* router_bias = nullptr;   // (n_experts)
  const float* gate_bias = nullptr;     // (n_experts, ffn_dim)
  const float* up_bias = nullptr;       // (n_experts, ffn_dim)
  const float* down_bias = nullptr;     // (n_experts, dim)
  bool clamped_swiglu = false;
  // DeepSeek: sigmoid scores (else softmax); a bias that only steers the choice (host memory,
  // null: none); the choice limited to the best n_groups_used of n_groups equal groups
  // (n_groups <= 1: no groups); the chosen weights times weights_scale.
  bool sigmoid_scores = false;
  const float* selection_bias = nullptr;
  int n_groups = 0;
  int n_groups_used = 0;
  bool group_by_best = false;  // a group's worth: its best score (V2), else the sum of its two best (V3)
  float weights_scale = 1.0f;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  virtual Result<Buffer> allocate(size_t bytes, MemoryKind kind) = 0;
  virtual void free(void* data, size_t bytes, MemoryKind kind) = 0;
  // Host -> backend memory and back, synchronous.
  virtual void copy_to_device(void* destination, const void* source, size_t bytes) = 0;
  virtual void copy_to_host(void* destination, const void* source, size_t bytes) = 0;
  // Backend memory to backend memory, `height` rows of `width` bytes between pitched
  // layouts (cudaMemcpy2D's shape), synchronous.
  virtual void copy_2d(void* destination, size_t destination_pitch, const void* source, size_t source_pitch,
                       size_t width, size_t height) = 0;
  // An in-order queue for asynchronous copies and work (backend/stream.h).
  virtual std::unique_ptr<Stream> create_stream(StreamRole role) = 0;

  // Whether ops can read host memory (weights, norms) directly. A device backend cannot:
  // everything an op reads must be in its kDevice memory.
  virtual bool reads_host_memory() const { return true; }
  // Order between the ops' queue and streams. The CPU backend runs ops synchronously, so
  // its queue has always reached the current point and a wait is a host wait; a device
  // backend records and waits events on its compute stream.
  virtual std::shared_ptr<Event> record_compute();
  virtual void wait_compute(const Event& event) { event.wait_host(); }
  // Blocks the host until every op issued so far has finished.
  virtual void synchronize() {}
  // Whether several host threads may issue ops at once (the draft's thread beside the
  // target's, ARCHITECTURE.md section 3). The CPU backend takes turns per op, the draft's
  // thread last (base/compute_gate.h).
  virtual bool concurrent_ops() const { return false; }
  // kDevice bytes still allocatable under the backend's own cap; -1: no cap of its own.
  virtual int64_t device_memory_free() const { return -1; }
  // The most kDevice bytes allocated at once so far.
  virtual int64_t device_bytes_peak() const = 0;

  // --- ops (shapes outer to inner) ---
  // y (n_rows, n_out) = x (n_rows, n_in) * W^T
  virtual void matmul(const TensorView& weight, const float* x, int64_t n_rows, float* y) = 0;
  // Same x against several weights (Q/K/V, gate/up).
  virtual void matmul_many(std::span<const TensorView> weights, const float* x, int64_t n_rows,
                           std::span<float* const> ys) = 0;
  // out (n_tokens, dim)
  virtual void embedding(const TensorView& table, std::span<const int32_t> tokens, float* out) = 0;
  // x (n_rows, dim), weight (dim) f32
  virtual void rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim,
                       float* out) = 0;
  // x (n_tokens, n_heads, head_dim) in place
  virtual void rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
                    const RopeParams& params) = 0;
  virtual void add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim) = 0;
  virtual void add(const float* a, const float* b, float* out, int64_t n) = 0;
  virtual void swiglu(const float* gate, const float* up, float* out, int64_t n) = 0;
  // out = gelu_tanh(gate) * up; out may alias gate (Gemma's FFN)
  virtual void geglu(const float* gate, const float* up, float* out, int64_t n) = 0;
  // x *= factor (Gemma's embedding scale)
  virtual void scale(float* x, float factor, int64_t n) = 0;
  // Gathers rows: out (n, dim) = x[indices[i]]
  virtual void gather_rows(const float* x, std::span<const int32_t> indices, int64_t dim, float* out) = 0;

  // Writes k, v (n_tokens, n_kv_heads * head_dim) of `layer` at each row's positions.
  virtual void kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
                        const float* v) = 0;
  // out (n_tokens, n_heads, head_dim) = causal softmax(q k^T * scale) v per row.
  virtual void attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                         const AttentionParams& params, const float* q, float* out) = 0;
  // The same two over a KV cache in host memory, computed by host threads (the host KV
  // tier, backend/host_attention.h); k, v, q and out are host memory too.
  virtual void host_kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
                             const float* v) = 0;
  virtual void host_attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                              const AttentionParams& params, const float* q, float* out) = 0;
  // out (n_tokens, dim) = sum over the top-k experts of weight * FFN_e(x).
  virtual void moe_ffn(const MoeWeights& weights, const float* x, int64_t n_tokens, int64_t dim, int64_t ffn_dim,
                       float* out) = 0;

  // argmax per row of x (n_rows, n); ties to the lowest index.
  virtual void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) = 0;
};

}  // namespace so
