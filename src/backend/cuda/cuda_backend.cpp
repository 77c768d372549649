#include "backend/cuda/cuda_backend.h"

#include "backend/cpu/cpu_stream.h"
#include "base/cpu_features.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_stream.h"
#include "backend/cuda/kernels.h"
#include "base/strings.h"
#include "tensor/quants.h"

namespace so {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

Result<std::unique_ptr<CudaBackend>> CudaBackend::create(const CudaBackendOptions& options) {
  const int count = cuda_device_count();
  if (count == 0) {
    return unsupported("no CUDA device was found (no GPU, or no NVIDIA driver); run with --backend cpu");
  }
  if (options.device < 0 || options.device >= count) {
    return invalid_argument("CUDA device ", options.device, " does not exist; this machine has ", count);
  }
  std::unique_ptr<CudaBackend> backend(new CudaBackend());
  backend->device_ = options.device;
  backend->host_threads_ = options.host_threads;
  SO_CUDA_CHECK(cudaSetDevice(options.device));
  cudaDeviceProp properties{};
  SO_CUDA_CHECK(cudaGetDeviceProperties(&properties, options.device));
  backend->device_name_ = properties.name;
  size_t free_bytes = 0, total_bytes = 0;
  SO_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // note: the driver and cuBLAS keep some memory for themselves; leave them room.
  const int64_t usable = int64_t(free_bytes) - (int64_t(512) << 20);
  if (options.memory_budget_bytes > usable) {
    return resource_exhausted("--gpu-mem ", format_bytes(double(options.memory_budget_bytes)), " is more than the ",
                              format_bytes(double(usable)), " free on ", properties.name, "; give at most that");
  }
  backend->budget_bytes_ = options.memory_budget_bytes > 0 ? options.memory_budget_bytes : usable;
  int least = 0, greatest = 0;
  SO_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  SO_CUDA_CHECK(cudaStreamCreateWithPriority(&backend->stream_, cudaStreamNonBlocking, greatest));
  SO_CUBLAS_CHECK(cublasCreate(&backend->cublas_));
  SO_CUBLAS_CHECK(cublasSetStream(backend->cublas_, backend->stream_));
  return backend;
}

CudaBackend::~CudaBackend() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (UploadSlot& slot : uploads_) cudaFree(slot.device);
  for (Scratch& s : scratch_) cudaFree(s.data);
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const {
  return str_cat("cuda (", device_name_, ", ", format_bytes(double(budget_bytes_)), " budget)");
}

Result<Buffer> CudaBackend::allocate(size_t bytes, MemoryKind kind) {
  const size_t rounded = std::max<size_t>(256, (bytes + 255) / 256 * 256);
  void* data = nullptr;
  switch (kind) {
    case MemoryKind::kDevice: {
      if (device_bytes_.load() + int64_t(rounded) > budget_bytes_) {
        return resource_exhausted("GPU memory budget of ", format_bytes(double(budget_bytes_)), " exceeded: ",
                                  format_bytes(double(device_bytes_.load())), " in use, ", format_bytes(double(bytes)),
                                  " requested; raise --gpu-mem, lower --device-mem or the batch (--max-rows)");
      }
      const cudaError_t status = cudaMalloc(&data, rounded);
      if (status != cudaSuccess) {
        cudaGetLastError();
        return resource_exhausted("cudaMalloc of ", format_bytes(double(bytes)), " failed (",
                                  cudaGetErrorString(status), "); lower --gpu-mem");
      }
      device_bytes_peak_ = std::max(device_bytes_peak_.load(), device_bytes_ += int64_t(rounded));
      break;
    }
    case MemoryKind::kPinnedHost: {
      const cudaError_t status = cudaHostAlloc(&data, rounded, cudaHostAllocPortable);
      if (status != cudaSuccess) {
        cudaGetLastError();
        return resource_exhausted("pinning ", format_bytes(double(bytes)), " of host memory failed (",
                                  cudaGetErrorString(status), "); free host memory or lower --host-mem");
      }
      break;
    }
    case MemoryKind::kHost:
      data = std::aligned_alloc(64, rounded);
      if (data == nullptr) return resource_exhausted("out of host memory allocating ", format_bytes(double(bytes)));
      break;
  }
  return Buffer(this, data, bytes, kind);
}

void CudaBackend::free(void* data, size_t bytes, MemoryKind kind) {
  const size_t rounded = std::max<size_t>(256, (bytes + 255) / 256 * 256);
  switch (kind) {
    case MemoryKind::kDevice:
      SO_CUDA_CHECK(cudaFree(data));
      device_bytes_ -= int64_t(rounded);
      break;
    case MemoryKind::kPinnedHost: SO_CUDA_CHECK(cudaFreeHost(data)); break;
    case MemoryKind::kHost: std::free(data); break;
  }
}

void CudaBackend::copy_to_device(void* destination, const void* source, size_t bytes) {
  SO_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDefault, stream_));
  SO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_to_host(void* destination, const void* source, size_t bytes) {
  SO_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDefault, stream_));
  SO_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_2d(void* destination, size_t destination_pitch, const void* source, size_t source_pitch,
                          size_t width, size_t height) {
  if (width == 0 || height == 0) return;
  SO_CUDA_CHECK(cudaMemcpy2DAsync(destination, destination_pitch, source, source_pitch, width, height,
                                  cudaMemcpyDefault, stream_));
}

std::unique_ptr<Stream> CudaBackend::create_stream(StreamRole role) {
  // note: disk reads are host work; a CUDA stream waiting on their events waits on the host.
  if (role == StreamRole::kDisk) return std::make_unique<CpuStream>(role);
  return std::make_unique<CudaStream>(role);
}

std::shared_ptr<Event> CudaBackend::record_compute() { return std::make_shared<CudaEvent>(stream_); }

void CudaBackend::wait_compute(const Event& event) { stream_wait(stream_, event); }

void CudaBackend::synchronize() { SO_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaBackend::scratch(int index, size_t bytes) {
  if (scratch_.size() <= size_t(index)) scratch_.resize(size_t(index) + 1);
  Scratch& s = scratch_[size_t(index)];
  if (s.bytes < bytes) {
    const size_t grown = std::max(bytes, s.bytes + s.bytes / 2);
    // note: cudaFree waits for the device, so no queued kernel still reads the old buffer.
    SO_CUDA_CHECK(cudaFree(s.data));
    device_bytes_ -= int64_t(s.bytes);
    SO_CHECK(device_bytes_.load() + int64_t(grown) <= budget_bytes_, "GPU memory budget of ",
             format_bytes(double(budget_bytes_)), " leaves no room for ", format_bytes(double(grown)),
             " of scratch; raise --gpu-mem or lower --device-mem");
    SO_CUDA_CHECK(cudaMalloc(&s.data, grown));
    device_bytes_ += int64_t(grown);
    s.bytes = grown;
  }
  return s.data;
}

const void* CudaBackend::upload(Upload which, const void* data, size_t bytes) {
  UploadSlot& slot = uploads_[static_cast<int>(which)];
  if (bytes == 0) return slot.device;
  if (slot.last.size() == bytes && std::memcmp(slot.last.data(), data, bytes) == 0) return slot.device;
  if (slot.capacity < bytes) {
    SO_CUDA_CHECK(cudaFree(slot.device));
    slot.capacity = std::max(bytes, size_t(4096));
    SO_CUDA_CHECK(cudaMalloc(&slot.device, slot.capacity));
  }
  // note: a copy from pageable memory is staged before the call returns, so `data` may change
  // right after; the kernel that reads the slot runs after the copy in stream order.
  SO_CUDA_CHECK(cudaMemcpyAsync(slot.device, data, bytes, cudaMemcpyHostToDevice, stream_));
  slot.last.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
  return slot.device;
}

void CudaBackend::matmul(const TensorView& weight, const float* x, int64_t n_rows, float* y) {
  const int64_t n_out = weight.shape[0], n_in = weight.shape.inner();
  SO_CHECK(cuda::supports_weight(weight.dtype), "the CUDA backend has no kernels for ", dtype_name(weight.dtype),
           " weights (it computes with F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4)");
  if (n_rows == 0 || n_out == 0) return;
  // Quantized weights: per-block integer dot products against Q8 activations, as the CPU
  // computes them, at every batch size (logits track the CPU's; results do not depend on
  // the batch).
  if (cuda::uses_q8_activations(weight.dtype)) {
    void* memory = scratch(kQ8Scratch, cuda::q8_activation_bytes(n_rows, n_in));
    const cuda::Q8Activations activations = cuda::q8_activations_in(memory, n_rows, n_in);
    cuda::quantize_activations(weight.dtype, x, n_rows, n_in, activations, stream_);
    cuda::matvec_q8(weight.dtype, weight.data, n_out, n_in, activations, n_rows, y, stream_);
    return;
  }
  // Float weights: small batches read them once through the f32 kernel; larger ones go to
  // cuBLAS (F16/BF16 with activations rounded to the weight's type, f32 accumulation).
  if (n_rows <= 8) {
    cuda::matvec(weight.dtype, weight.data, n_out, n_in, x, n_rows, y, stream_);
    return;
  }
  const float one = 1.0f, zero = 0.0f;
  if (weight.dtype == DType::kF32) {
    SO_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(n_out), int(n_rows), int(n_in), &one,
                                static_cast<const float*>(weight.data), int(n_in), x, int(n_in), &zero, y, int(n_out)));
    return;
  }
  const bool bf16 = weight.dtype == DType::kBF16;
  void* x_half = scratch(kHalfActivationScratch, size_t(n_rows * n_in) * 2);
  cuda::convert_f32(x, n_rows * n_in, bf16, x_half, stream_);
  const cudaDataType type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  SO_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(n_out), int(n_rows), int(n_in), &one,
                               weight.data, type, int(n_in), x_half, type, int(n_in), &zero, y, CUDA_R_32F,
                               int(n_out), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::matmul_many(std::span<const TensorView> weights, const float* x, int64_t n_rows,
                              std::span<float* const> ys) {
  for (size_t i = 0; i < weights.size(); ++i) matmul(weights[i], x, n_rows, ys[i]);
}

void CudaBackend::embedding(const TensorView& table, std::span<const int32_t> tokens, float* out) {
  // note: the token table stays in host memory (a pass reads only its tokens' rows).
  const int64_t n_vocab = table.shape[0], dim = table.shape.inner();
  host_rows_.resize(tokens.size() * size_t(dim));
  for (size_t t = 0; t < tokens.size(); ++t) {
    SO_CHECK(tokens[t] >= 0 && tokens[t] < n_vocab, "embedding: token ", tokens[t], " outside [0, ", n_vocab, ")");
    dequantize_row(table.dtype, table.row(tokens[t]), host_rows_.data() + t * dim, dim);
  }
  if (tokens.empty()) return;
  SO_CUDA_CHECK(cudaMemcpyAsync(out, host_rows_.data(), host_rows_.size() * sizeof(float), cudaMemcpyHostToDevice,
                                stream_));
}

void CudaBackend::rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) {
  cuda::rmsnorm(x, weight, eps, n_rows, dim, out, stream_);
}

void CudaBackend::rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
                       const RopeParams& params) {
  if (positions.empty()) return;
  const auto* device_positions =
      static_cast<const int32_t*>(upload(Upload::kPositions, positions.data(), positions.size_bytes()));
  const float* freq_factors = nullptr;
  if (params.freq_factors != nullptr) {
    freq_factors = static_cast<const float*>(
        upload(Upload::kFreqFactors, params.freq_factors, size_t(params.n_rot / 2) * sizeof(float)));
  }
  cuda::rope(x, device_positions, int64_t(positions.size()), n_heads, head_dim, params, freq_factors, stream_);
}

void CudaBackend::add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim) {
  cuda::add_bias(x, bias, n_rows, dim, stream_);
}

void CudaBackend::add(const float* a, const float* b, float* out, int64_t n) { cuda::add(a, b, out, n, stream_); }

void CudaBackend::swiglu(const float* gate, const float* up, float* out, int64_t n) {
  cuda::swiglu(gate, up, out, n, stream_);
}

void CudaBackend::geglu(const float* gate, const float* up, float* out, int64_t n) {
  cuda::geglu(gate, up, out, n, stream_);
}

void CudaBackend::scale(float* x, float factor, int64_t n) { cuda::scale(x, factor, n, stream_); }

void CudaBackend::gather_rows(const float* x, std::span<const int32_t> indices, int64_t dim, float* out) {
  if (indices.empty()) return;
  const auto* device_indices = static_cast<const int32_t*>(upload(Upload::kIndices, indices.data(), indices.size_bytes()));
  cuda::gather_rows(x, device_indices, int64_t(indices.size()), dim, out, stream_);
}

void CudaBackend::upload_kv_rows(std::span<const AttentionRow> rows, const void** tokens, const void** pages) {
  std::vector<cuda::TokenKv> token_kv;
  std::vector<const void*> page_pointers;
  for (const AttentionRow& row : rows) {
    const int32_t end = row.first_token + row.n_tokens;
    if (int32_t(token_kv.size()) < end) token_kv.resize(size_t(end), cuda::TokenKv{0, 0});
    for (int32_t i = 0; i < row.n_tokens; ++i) {
      token_kv[size_t(row.first_token + i)] = {row.kv_start + i + 1, int32_t(page_pointers.size())};
    }
    page_pointers.insert(page_pointers.end(), row.pages.begin(), row.pages.end());
  }
  *tokens = upload(Upload::kKvTokens, token_kv.data(), token_kv.size() * sizeof(cuda::TokenKv));
  *pages = upload(Upload::kPages, page_pointers.data(), page_pointers.size() * sizeof(void*));
}

namespace {
int64_t step_tokens(std::span<const AttentionRow> rows) {
  int64_t n = 0;
  for (const AttentionRow& row : rows) n = std::max<int64_t>(n, row.first_token + row.n_tokens);
  return n;
}
}  // namespace

void CudaBackend::kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const float* k,
                           const float* v) {
  const void* tokens = nullptr;
  const void* pages = nullptr;
  upload_kv_rows(rows, &tokens, &pages);
  cuda::kv_store(geometry, layer, static_cast<const cuda::TokenKv*>(tokens), static_cast<const uint8_t* const*>(pages),
                 step_tokens(rows), k, v, stream_);
}

void CudaBackend::attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                            const AttentionParams& params, const float* q, float* out) {
  const void* tokens = nullptr;
  const void* pages = nullptr;
  upload_kv_rows(rows, &tokens, &pages);
  cuda::attention(geometry, layer, static_cast<const cuda::TokenKv*>(tokens), static_cast<const uint8_t* const*>(pages),
                  step_tokens(rows), params, q, out, stream_);
}

void CudaBackend::host_kv_store(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                                const float* k, const float* v) {
  cpu::kv_store(geometry, layer, rows, k, v, host_pool());
}

void CudaBackend::host_attention(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                                 const AttentionParams& params, const float* q, float* out) {
  cpu::attention(cpu::detect_isa(), host_pool(), host_attention_scratch_, geometry, layer, rows, params, q, out);
}

ThreadPool& CudaBackend::host_pool() {
  // note: created on first use, so a run with its KV cache on the device starts no threads.
  if (!host_pool_) host_pool_ = std::make_unique<ThreadPool>(host_threads_ > 0 ? host_threads_ : cpu_features().n_physical_cores);
  return *host_pool_;
}

void CudaBackend::argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) {
  cuda::argmax(x, n_rows, n, out, stream_);
}

}  // namespace so
