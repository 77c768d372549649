// Quantized weights against activations quantized to 8 bits per row, as the CPU backend
// (and llama.cpp) compute them: the same activation blocks (Q8_0 for Q4_0/Q8_0 weights, Q8_1
// for Q4_1, Q8_K for Q4_K/Q6_K), exact integer dot products per block, and the same float
// arithmetic per block; only the order in which blocks are summed differs. So GPU logits
// track the CPU's to rounding, and a step's result does not depend on its batch size.
#include <cuda_fp16.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace so::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr unsigned kFull = 0xFFFFFFFFu;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ float f16_round(float v) { return __half2float(__float2half_rn(v)); }
__device__ __forceinline__ float f16_bits(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t*>(p)));
}

// One warp per 32-element block: d = max|x| / 127, q = round(x * 127 / max|x|); Q8_1 also
// keeps s = d * sum(q). d and s are rounded to f16 as the block format stores them.
__global__ void quantize_q8_32_kernel(const float* __restrict__ x, int64_t n_blocks, Q8Activations a) {
  const int64_t block = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (block >= n_blocks) return;
  const float v = x[block * 32 + lane];
  const float max_abs = warp_max(fabsf(v));
  const float d = max_abs / 127.0f;
  const float inverse = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
  const int q = __float2int_rn(v * inverse);
  a.q[block * 32 + lane] = int8_t(q);
  const int sum = warp_sum(q);
  if (lane == 0) {
    a.d[block] = f16_round(d);
    a.s[block] = f16_round(d * float(sum));
  }
}

// One warp per 256-element block: the element of largest magnitude (the first, on ties)
// maps to -127 with its sign; sums of 16 kept for the K-quants' mins.
__global__ void quantize_q8_k_kernel(const float* __restrict__ x, int64_t n_blocks, Q8Activations a) {
  const int64_t block = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (block >= n_blocks) return;
  const float* in = x + block * 256;
  float v[8];
  float local_max = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    v[i] = in[lane * 8 + i];
    local_max = fmaxf(local_max, fabsf(v[i]));
  }
  const float max_abs = warp_max(local_max);
  int first = 256;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    if (fabsf(v[i]) == max_abs && first == 256) first = lane * 8 + i;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) first = min(first, __shfl_xor_sync(kFull, first, o));
  const float max_signed = __shfl_sync(kFull, v[(first % 8)], first / 8);
  int8_t* q = a.q + block * 256;
  if (max_abs == 0.0f) {
#pragma unroll
    for (int i = 0; i < 8; ++i) q[lane * 8 + i] = 0;
    if (lane < 16) a.bsums[block * 16 + lane] = 0;
    if (lane == 0) a.d[block * 8] = 0.0f;
    return;
  }
  const float inverse_scale = -127.0f / max_signed;
  int partial = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int value = min(127, __float2int_rn(inverse_scale * v[i]));
    q[lane * 8 + i] = int8_t(value);
    partial += value;
  }
  // Lanes 2g and 2g+1 hold the 16 elements of group g.
  const int group_sum = partial + __shfl_xor_sync(kFull, partial, 1);
  if (lane % 2 == 0) a.bsums[block * 16 + lane / 2] = group_sum;
  if (lane == 0) a.d[block * 8] = 1.0f / inverse_scale;
}

// Per weight type: the float contribution of one weight block against row r's activations,
// computed as the CPU reference does.
template <DType T>
struct Q8Dot;

template <>
struct Q8Dot<DType::kQ4_0> {
  static constexpr int kBlockBytes = 18, kBlockElements = 32;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    const int8_t* x = a.q + block * 32;
    int isum = 0;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int b = w[2 + j];
      isum += ((b & 0xF) - 8) * x[j] + ((b >> 4) - 8) * x[j + 16];
    }
    return (f16_bits(w) * a.d[block]) * float(isum);
  }
};

template <>
struct Q8Dot<DType::kQ5_0> {
  static constexpr int kBlockBytes = 22, kBlockElements = 32;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    const int8_t* x = a.q + block * 32;
    const uint32_t qh = uint32_t(w[2]) | uint32_t(w[3]) << 8 | uint32_t(w[4]) << 16 | uint32_t(w[5]) << 24;
    int isum = 0;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int b = w[6 + j];
      isum += (((b & 0xF) | int((qh >> j) & 1) << 4) - 16) * x[j] +
              (((b >> 4) | int((qh >> (j + 16)) & 1) << 4) - 16) * x[j + 16];
    }
    return (f16_bits(w) * a.d[block]) * float(isum);
  }
};

template <>
struct Q8Dot<DType::kMXFP4> {
  static constexpr int kBlockBytes = 17, kBlockElements = 32;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    constexpr int8_t kValues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    const int8_t* x = a.q + block * 32;
    int isum = 0;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int b = w[1 + j];
      isum += kValues[b & 0xF] * x[j] + kValues[b >> 4] * x[j + 16];
    }
    const uint32_t e = w[0];
    const float half_scale = __uint_as_float(e < 2 ? 0x00200000u << e : (e - 1) << 23);
    return (half_scale * a.d[block]) * float(isum);
  }
};

template <>
struct Q8Dot<DType::kQ8_0> {
  static constexpr int kBlockBytes = 34, kBlockElements = 32;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    const int8_t* x = a.q + block * 32;
    const int8_t* q = reinterpret_cast<const int8_t*>(w + 2);
    int isum = 0;
#pragma unroll
    for (int j = 0; j < 32; ++j) isum += q[j] * x[j];
    return (f16_bits(w) * a.d[block]) * float(isum);
  }
};

template <>
struct Q8Dot<DType::kQ4_1> {
  static constexpr int kBlockBytes = 20, kBlockElements = 32;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    const int8_t* x = a.q + block * 32;
    int isum = 0;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int b = w[4 + j];
      isum += (b & 0xF) * x[j] + (b >> 4) * x[j + 16];
    }
    return (f16_bits(w) * a.d[block]) * float(isum) + f16_bits(w + 2) * a.s[block];
  }
};

__device__ __forceinline__ void q4_k_scale_min(int j, const uint8_t* scales, int& scale, int& min) {
  if (j < 4) {
    scale = scales[j] & 63;
    min = scales[j + 4] & 63;
  } else {
    scale = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Q4_K and Q5_K (qh: the fifth bits, null for Q4_K): the CPU reference's per-block sums.
__device__ __forceinline__ float k4_family_dot(const uint8_t* w, const uint8_t* q, const uint8_t* qh,
                                               const Q8Activations& a, int64_t block) {
  const int8_t* x = a.q + block * 256;
  const int32_t* bsums = a.bsums + block * 16;
  int isum = 0, imin = 0;
  for (int sub = 0; sub < 8; sub += 2, q += 32, x += 64) {
    int scale_low, min_low, scale_high, min_high;
    q4_k_scale_min(sub, w + 4, scale_low, min_low);
    q4_k_scale_min(sub + 1, w + 4, scale_high, min_high);
    int dot_low = 0, dot_high = 0;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int fifth_low = qh ? ((qh[l] >> sub) & 1) << 4 : 0, fifth_high = qh ? ((qh[l] >> (sub + 1)) & 1) << 4 : 0;
      dot_low += ((q[l] & 0xF) | fifth_low) * x[l];
      dot_high += ((q[l] >> 4) | fifth_high) * x[l + 32];
    }
    isum += scale_low * dot_low + scale_high * dot_high;
    imin += min_low * (bsums[2 * sub] + bsums[2 * sub + 1]) + min_high * (bsums[2 * sub + 2] + bsums[2 * sub + 3]);
  }
  const float dx = a.d[block * 8];
  const float d = dx * f16_bits(w), dmin = dx * f16_bits(w + 2);
  return d * float(isum) - dmin * float(imin);
}

template <>
struct Q8Dot<DType::kQ4_K> {
  static constexpr int kBlockBytes = 144, kBlockElements = 256;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    return k4_family_dot(w, w + 16, nullptr, a, block);
  }
};

template <>
struct Q8Dot<DType::kQ5_K> {
  static constexpr int kBlockBytes = 176, kBlockElements = 256;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    return k4_family_dot(w, w + 48, w + 16, a, block);
  }
};

template <>
struct Q8Dot<DType::kQ6_K> {
  static constexpr int kBlockBytes = 210, kBlockElements = 256;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    const int8_t* x = a.q + block * 256;
    const int8_t* scales = reinterpret_cast<const int8_t*>(w + 192);
    int isum = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = w + 64 * half;
      const uint8_t* qh = w + 128 + 32 * half;
      for (int group = 0; group < 4; ++group) {
        const int low_shift = (group / 2) * 4, high_shift = 2 * group;
        const uint8_t* l_bytes = ql + (group % 2) * 32;
        const int8_t* xs = x + half * 128 + group * 32;
        int dot0 = 0, dot1 = 0;
#pragma unroll
        for (int l = 0; l < 16; ++l) {
          dot0 += ((((l_bytes[l] >> low_shift) & 0xF) | (((qh[l] >> high_shift) & 3) << 4)) - 32) * xs[l];
          dot1 += ((((l_bytes[l + 16] >> low_shift) & 0xF) | (((qh[l + 16] >> high_shift) & 3) << 4)) - 32) *
                  xs[l + 16];
        }
        const int sub = half * 8 + group * 2;
        isum += scales[sub] * dot0 + scales[sub + 1] * dot1;
      }
    }
    return (a.d[block * 8] * f16_bits(w + 208)) * float(isum);
  }
};

// Element i of a Q2_K/Q3_K block's 2-bit values (tensor/blocks.h).
__device__ __forceinline__ int k2_low_bits(const uint8_t* qs, int i) {
  return (qs[(i / 128) * 32 + i % 32] >> (2 * (i % 128 / 32))) & 3;
}

template <>
struct Q8Dot<DType::kQ2_K> {
  static constexpr int kBlockBytes = 84, kBlockElements = 256;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    const int8_t* x = a.q + block * 256;
    const int32_t* bsums = a.bsums + block * 16;
    const uint8_t* scales = w;
    const uint8_t* qs = w + 16;
    int isum = 0, imin = 0;
    for (int sub = 0; sub < 16; ++sub) {
      int dot = 0;
#pragma unroll
      for (int l = 0; l < 16; ++l) dot += k2_low_bits(qs, sub * 16 + l) * x[sub * 16 + l];
      isum += (scales[sub] & 0xF) * dot;
      imin += (scales[sub] >> 4) * bsums[sub];
    }
    const float dx = a.d[block * 8];
    return (dx * f16_bits(w + 80)) * float(isum) - (dx * f16_bits(w + 82)) * float(imin);
  }
};

template <>
struct Q8Dot<DType::kQ3_K> {
  static constexpr int kBlockBytes = 110, kBlockElements = 256;
  static __device__ __forceinline__ float dot(const uint8_t* w, const Q8Activations& a, int64_t block) {
    const int8_t* x = a.q + block * 256;
    const uint8_t* hmask = w;
    const uint8_t* qs = w + 32;
    const uint8_t* packed = w + 96;
    int isum = 0;
    for (int sub = 0; sub < 16; ++sub) {
      const int low = sub < 8 ? packed[sub] & 0xF : packed[sub - 8] >> 4;
      const int scale = (low | (((packed[8 + sub % 4] >> (2 * (sub / 4))) & 3) << 4)) - 32;
      int dot = 0;
#pragma unroll
      for (int l = 0; l < 16; ++l) {
        const int i = sub * 16 + l;
        const int bit = (i / 128) * 4 + i % 128 / 32;
        dot += (k2_low_bits(qs, i) - ((hmask[i % 32] >> bit) & 1 ? 0 : 4)) * x[i];
      }
      isum += scale * dot;
    }
    return (a.d[block * 8] * f16_bits(w + 108)) * float(isum);
  }
};

// One warp per output row; lanes take interleaved weight blocks; up to R activation rows.
template <DType T, int R>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) matvec_q8_kernel(const uint8_t* __restrict__ weight,
                                                                        int64_t n_out, int64_t n_blocks,
                                                                        Q8Activations a, int64_t n_rows,
                                                                        float* __restrict__ y) {
  using D = Q8Dot<T>;
  const int lane = threadIdx.x % 32;
  const int64_t out = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (out >= n_out) return;
  const int64_t first = int64_t(blockIdx.y) * R;
  const uint8_t* row = weight + out * n_blocks * D::kBlockBytes;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  for (int64_t b = lane; b < n_blocks; b += 32) {
    const uint8_t* w = row + b * D::kBlockBytes;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (first + r >= n_rows) break;
      // note: activation block indices count 32-element units for Q8_0/Q8_1 and 256 for
      // Q8_K, over the whole (n_rows, n_in) matrix.
      acc[r] += D::dot(w, a, (first + r) * n_blocks + b);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float sum = warp_sum(acc[r]);
    if (lane == 0 && first + r < n_rows) y[(first + r) * n_out + out] = sum;
  }
}

template <DType T>
void launch_matvec_q8(const void* weight, int64_t n_out, int64_t n_in, const Q8Activations& a, int64_t n_rows,
                      float* y, cudaStream_t stream) {
  constexpr int R = 8;
  const dim3 grid(unsigned((n_out + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned((n_rows + R - 1) / R));
  const int64_t n_blocks = n_in / Q8Dot<T>::kBlockElements;
  if (n_rows == 1) {
    matvec_q8_kernel<T, 1><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(static_cast<const uint8_t*>(weight), n_out,
                                                                      n_blocks, a, n_rows, y);
  } else {
    matvec_q8_kernel<T, R><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(static_cast<const uint8_t*>(weight), n_out,
                                                                      n_blocks, a, n_rows, y);
  }
  SO_CUDA_LAUNCHED();
}

}  // namespace

bool uses_q8_activations(DType weight) {
  return weight == DType::kQ4_0 || weight == DType::kQ4_1 || weight == DType::kQ5_0 || weight == DType::kQ8_0 ||
         weight == DType::kQ4_K || weight == DType::kQ5_K || weight == DType::kQ6_K || weight == DType::kMXFP4 ||
         weight == DType::kQ2_K || weight == DType::kQ3_K;
}

size_t q8_activation_bytes(int64_t n_rows, int64_t n_in) {
  // q (1 byte per element), d and s (a float per 32), bsums (an int per 16)
  const int64_t n = n_rows * n_in;
  return size_t(n + 4 * (n / 32) * 2 + 4 * (n / 16)) + 3 * 256;
}

Q8Activations q8_activations_in(void* memory, int64_t n_rows, int64_t n_in) {
  const int64_t n = n_rows * n_in;
  auto align = [](uint8_t* p) { return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + 255) & ~uintptr_t(255)); };
  uint8_t* p = static_cast<uint8_t*>(memory);
  Q8Activations a;
  a.q = reinterpret_cast<int8_t*>(p);
  p = align(p + n);
  a.d = reinterpret_cast<float*>(p);
  p = align(p + 4 * (n / 32));
  a.s = reinterpret_cast<float*>(p);
  p = align(p + 4 * (n / 32));
  a.bsums = reinterpret_cast<int32_t*>(p);
  return a;
}

void quantize_activations(DType weight, const float* x, int64_t n_rows, int64_t n_in, const Q8Activations& a,
                          cudaStream_t stream) {
  const bool k_quant = weight == DType::kQ4_K || weight == DType::kQ5_K || weight == DType::kQ6_K ||
                       weight == DType::kQ2_K || weight == DType::kQ3_K;
  const int64_t n_blocks = n_rows * n_in / (k_quant ? 256 : 32);
  if (n_blocks == 0) return;
  const int threads = 256;
  const unsigned grid = unsigned((n_blocks * 32 + threads - 1) / threads);
  if (k_quant) {
    quantize_q8_k_kernel<<<grid, threads, 0, stream>>>(x, n_blocks, a);
  } else {
    quantize_q8_32_kernel<<<grid, threads, 0, stream>>>(x, n_blocks, a);
  }
  SO_CUDA_LAUNCHED();
}

void matvec_q8(DType weight_dtype, const void* weight, int64_t n_out, int64_t n_in, const Q8Activations& a,
               int64_t n_rows, float* y, cudaStream_t stream) {
  switch (weight_dtype) {
    case DType::kQ4_0: return launch_matvec_q8<DType::kQ4_0>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ4_1: return launch_matvec_q8<DType::kQ4_1>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ5_0: return launch_matvec_q8<DType::kQ5_0>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kMXFP4: return launch_matvec_q8<DType::kMXFP4>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ8_0: return launch_matvec_q8<DType::kQ8_0>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ4_K: return launch_matvec_q8<DType::kQ4_K>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ5_K: return launch_matvec_q8<DType::kQ5_K>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ6_K: return launch_matvec_q8<DType::kQ6_K>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ2_K: return launch_matvec_q8<DType::kQ2_K>(weight, n_out, n_in, a, n_rows, y, stream);
    case DType::kQ3_K: return launch_matvec_q8<DType::kQ3_K>(weight, n_out, n_in, a, n_rows, y, stream);
    default: SO_CHECK(false, "matvec_q8: ", dtype_name(weight_dtype), " weights take f32 activations");
  }
}

}  // namespace so::cuda
