// Float weights (F32/F16/BF16) against f32 activations for small batches, and the
// conversion that feeds cuBLAS for large ones (CudaBackend::matmul chooses).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dequant.cuh"
#include "backend/cuda/kernels.h"

namespace so::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xFFFFFFFFu, value, offset);
  return value;
}

// One warp per output row; lanes take interleaved 32-element chunks of the weight row, so
// a warp reads its row once for up to R activation rows.
template <DType T, int R>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) matvec_kernel(const uint8_t* __restrict__ weight,
                                                                     int64_t row_bytes, int64_t n_out,
                                                                     int64_t n_chunks, const float* __restrict__ x,
                                                                     int64_t n_in, int64_t n_rows,
                                                                     float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const int64_t out = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (out >= n_out) return;
  const int64_t first = int64_t(blockIdx.y) * R;
  const uint8_t* row = weight + out * row_bytes;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  for (int64_t c = lane; c < n_chunks; c += 32) {
    float v[32];
    Chunk<T>::load(row, c, v);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (first + r >= n_rows) break;
      const float4* xs = reinterpret_cast<const float4*>(x + (first + r) * n_in + c * 32);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float4 f = xs[i];
        acc[r] += v[4 * i] * f.x + v[4 * i + 1] * f.y + v[4 * i + 2] * f.z + v[4 * i + 3] * f.w;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float sum = warp_sum(acc[r]);
    if (lane == 0 && first + r < n_rows) y[(first + r) * n_out + out] = sum;
  }
}

__global__ void convert_kernel(const float* __restrict__ x, int64_t n, bool to_bf16, uint16_t* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = to_bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x[i])) : __half_as_ushort(__float2half_rn(x[i]));
}

// Calls f.template operator()<T>() for a float weight dtype.
template <typename F>
void dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32: return f.template operator()<DType::kF32>();
    case DType::kF16: return f.template operator()<DType::kF16>();
    case DType::kBF16: return f.template operator()<DType::kBF16>();
    default: SO_CHECK(false, "the f32-activation kernel takes F32, F16 or BF16 weights, not ", dtype_name(dtype));
  }
}

template <DType T, int R>
void launch_matvec(const void* weight, int64_t n_out, int64_t n_in, const float* x, int64_t n_rows, float* y,
                   cudaStream_t stream) {
  const dim3 grid(unsigned((n_out + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned((n_rows + R - 1) / R));
  matvec_kernel<T, R><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(static_cast<const uint8_t*>(weight),
                                                                dtype_row_bytes(T, n_in), n_out, n_in / 32, x, n_in,
                                                                n_rows, y);
  SO_CUDA_LAUNCHED();
}

}  // namespace

bool supports_weight(DType dtype) {
  switch (dtype) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ4_0: case DType::kQ4_1:
    case DType::kQ5_0: case DType::kQ8_0: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K: case DType::kMXFP4:
    case DType::kQ2_K: case DType::kQ3_K:
      return true;
    default:
      return false;
  }
}

void matvec(DType dtype, const void* weight, int64_t n_out, int64_t n_in, const float* x, int64_t n_rows, float* y,
            cudaStream_t stream) {
  SO_CHECK(n_in % 32 == 0, "CUDA matvec: row length ", n_in, " is not a multiple of 32");
  dispatch(dtype, [&]<DType T>() {
    if (n_rows == 1) return launch_matvec<T, 1>(weight, n_out, n_in, x, n_rows, y, stream);
    if (n_rows == 2) return launch_matvec<T, 2>(weight, n_out, n_in, x, n_rows, y, stream);
    if (n_rows <= 4) return launch_matvec<T, 4>(weight, n_out, n_in, x, n_rows, y, stream);
    launch_matvec<T, 8>(weight, n_out, n_in, x, n_rows, y, stream);
  });
}

void convert_f32(const float* x, int64_t n, bool to_bf16, void* out, cudaStream_t stream) {
  const int threads = 256;
  convert_kernel<<<unsigned((n + threads - 1) / threads), threads, 0, stream>>>(x, n, to_bf16,
                                                                              static_cast<uint16_t*>(out));
  SO_CUDA_LAUNCHED();
}

}  // namespace so::cuda
