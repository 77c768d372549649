#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <sys/mman.h>

#include "backend/cpu/cpu_stream.h"
#include "base/cpu_features.h"

namespace so {

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : pool_(std::make_unique<ThreadPool>(options.n_threads > 0 ? options.n_threads : cpu_features().n_physical_cores)),
      kernels_(*pool_, cpu::detect_isa()),
      device_budget_bytes_(options.device_budget_bytes) {
  if (options.sim_link_gbps > 0) {
    to_device_link_ = std::make_shared<SimulatedLink>(options.sim_link_gbps * 1e9);
    to_host_link_ = std::make_shared<SimulatedLink>(options.sim_link_gbps * 1e9);
  }
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const {
  return str_cat("cpu (", cpu::isa_name(kernels_.isa()), ", ", pool_->n_threads(), " threads)");
}

Result<Buffer> CpuBackend::allocate(size_t bytes, MemoryKind kind) {
  if (kind == MemoryKind::kDevice) {
    // note: a compare-and-swap, so two threads allocating at once (the draft's beside the
    // target's) cannot both pass the budget check.
    int64_t in_use = device_bytes_.load();
    do {
      if (device_budget_bytes_ > 0 && in_use + static_cast<int64_t>(bytes) > device_budget_bytes_) {
        return resource_exhausted("device memory of ", format_bytes(double(device_budget_bytes_)),
                                  " (--gpu-mem) exceeded: ", format_bytes(double(in_use)), " in use, ",
                                  format_bytes(double(bytes)),
                                  " requested; raise --gpu-mem, lower --device-mem or the batch (--max-rows), or put "
                                  "the KV cache in host memory (--kv-cache host)");
      }
    } while (!device_bytes_.compare_exchange_weak(in_use, in_use + static_cast<int64_t>(bytes)));
    const int64_t now = in_use + static_cast<int64_t>(bytes);
    int64_t peak = device_bytes_peak_.load();
    while (now > peak && !device_bytes_peak_.compare_exchange_weak(peak, now)) {
    }
  }
  // note: large buffers (weights' slabs, the KV arena) on 2 MiB pages where the kernel offers them: filling tens
  // of GB page by page is most of a model's load time, and streaming matmuls miss the TLB less.
  constexpr size_t kHugePage = 2 << 20;
  const size_t alignment = bytes >= kHugePage ? kHugePage : 64;
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* data = std::aligned_alloc(alignment, rounded == 0 ? 64 : rounded);
#ifdef MADV_HUGEPAGE
  if (data != nullptr && alignment == kHugePage) madvise(data, rounded, MADV_HUGEPAGE);
#endif
  if (data == nullptr) {
    if (kind == MemoryKind::kDevice) device_bytes_ -= static_cast<int64_t>(bytes);
    return resource_exhausted("out of host memory allocating ", format_bytes(double(bytes)));
  }
  return Buffer(this, data, bytes, kind);
}

int64_t CpuBackend::device_memory_free() const {
  return device_budget_bytes_ > 0 ? device_budget_bytes_ - device_bytes_.load() : -1;
}

void CpuBackend::free(void* data, size_t bytes, MemoryKind kind) {
  if (kind == MemoryKind::kDevice) device_bytes_ -= static_cast<int64_t>(bytes);
  std::free(data);
}

void CpuBackend::copy_to_device(void* destination, const void* source, size_t bytes) {
  std::memcpy(destination, source, bytes);
}

void CpuBackend::copy_to_host(void* destination, const void* source, size_t bytes) {
  std::memcpy(destination, source, bytes);
}

void CpuBackend::copy_2d(void* destination, size_t destination_pitch, const void* source, size_t source_pitch,
                         size_t width, size_t height) {
  for (size_t row = 0; row < height; ++row) {
    std::memcpy(static_cast<uint8_t*>(destination) + row * destination_pitch,
                static_cast<const uint8_t*>(source) + row * source_pitch, width);
  }
}

std::unique_ptr<Stream> CpuBackend::create_stream(StreamRole role) {
  if (role == StreamRole::kCopy) return std::make_unique<CpuStream>(role, to_device_link_);
  if (role == StreamRole::kCopyToHost) return std::make_unique<CpuStream>(role, to_host_link_);
  return std::make_unique<CpuStream>(role);
}

void CpuBackend::matmul(const TensorView& weight, const float* x, int64_t n_rows, float* y) {
  ComputeGate::Scope turn(gate_);
  kernels_.matmul(matmul_workspace_, weight, x, n_rows, y);
}

void CpuBackend::matmul_many(std::span<const TensorView> weights, const float* x, int64_t n_rows,
                             std::span<float* const> ys) {
  ComputeGate::Scope turn(gate_);
  // note: one quantization of x serves weights of one dtype; mixed files (Gemma's Q5_0 q/k
  // beside a Q8_0 v) take one matmul each.
  const bool shared = std::all_of(weights.begin(), weights.end(), [&](const TensorView& w) {
    return w.dtype == weights.front().dtype && w.shape.inner() == weights.front().shape.inner();
  });
  if (shared) return kernels_.matmul_many(matmul_workspace_, weights, x, n_rows, ys);
  for (size_t i = 0; i < weights.size(); ++i) kernels_.matmul(matmul_workspace_, weights[i], x, n_rows, ys[i]);
}

void CpuBackend::embedding(const TensorView& table, std::span<const int32_t> tokens, float* out) {
  ComputeGate::Scope turn(gate_);
  kernels_.embedding(table, tokens, out);
}

void CpuBackend::rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) {
  ComputeGate::Scope turn(gate_);
  kernels_.rmsnorm(x, weight, eps, n_rows, dim, out);
}

void CpuBackend::rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
                      const RopeParams& params) {
  ComputeGate::Scope turn(gate_);
  kernels_.rope(x, positions, n_heads, head_dim, params);
}

void CpuBackend::add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim) {
  ComputeGate::Scope turn(gate_);
  kernels_.add_bias(x, bias, n_rows, dim);
}

void CpuBackend::add(const float* a, const float* b, float* out, int64_t n) {
  ComputeGate::Scope turn(gate_);
  kernels_.add(a, b, out, n);
}

void CpuBackend::swiglu(const float* gate, const float* up, float* out, int64_t n) {
  ComputeGate::Scope turn(gate_);
  kernels_.swiglu(gate, up, out, n);
}

void CpuBackend::geglu(const float* gate, const float* up, float* out, int64_t n) {
  ComputeGate::Scope turn(gate_);
  kernels_.geglu(gate, up, out, n);
}

void CpuBackend::scale(float* x, float factor, int64_t n) {
  ComputeGate::Scope turn(gate_);
  kernels_.scale(x, factor, n);
}

void CpuBackend::gather_rows(const float* x, std::span<const int32_t> indices, int64_t dim, float* out) {
  ComputeGate::Scope turn(gate_);
  for (size_t i = 0; i < indices.size(); ++i) {
    std::memcpy(out + int64_t(i) * dim, x + int64_t(indices[i]) * dim, dim * sizeof(float));
  }
}

void CpuBackend::kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
                          const float* v) {
  ComputeGate::Scope turn(gate_);
  cpu::kv_store(geometry, layer, rows, k, v, *pool_);
}

void CpuBackend::attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                           const AttentionParams& params, const float* q, float* out) {
  ComputeGate::Scope turn(gate_);
  cpu::attention(kernels_.isa(), *pool_, attention_scratch_, geometry, layer, rows, params, q, out);
}

void CpuBackend::argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) {
  ComputeGate::Scope turn(gate_);
  kernels_.argmax(x, n_rows, n, out);
}

}  // namespace so
