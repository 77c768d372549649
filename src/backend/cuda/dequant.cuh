// Device loads of one 32-element chunk of a float weight row (F32, F16, BF16) as f32.
// Quantized weights never become floats: they meet Q8 activations (matmul_q8.cu).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "tensor/dtype.h"

namespace so::cuda {

__device__ __forceinline__ float half_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
__device__ __forceinline__ float bf16_bits_to_float(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }

template <DType T>
struct Chunk;

template <>
struct Chunk<DType::kF32> {
  static __device__ __forceinline__ void load(const uint8_t* row, int64_t chunk, float (&v)[32]) {
    const float4* p = reinterpret_cast<const float4*>(row + chunk * 128);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float4 f = p[i];
      v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
    }
  }
};

template <bool kBf16>
struct Chunk16 {
  static __device__ __forceinline__ void load(const uint8_t* row, int64_t chunk, float (&v)[32]) {
    const uint4* p = reinterpret_cast<const uint4*>(row + chunk * 64);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint4 u = p[i];
      const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint16_t lo = uint16_t(words[j] & 0xFFFF), hi = uint16_t(words[j] >> 16);
        v[8 * i + 2 * j] = kBf16 ? bf16_bits_to_float(lo) : half_bits_to_float(lo);
        v[8 * i + 2 * j + 1] = kBf16 ? bf16_bits_to_float(hi) : half_bits_to_float(hi);
      }
    }
  }
};
template <>
struct Chunk<DType::kF16> : Chunk16<false> {};
template <>
struct Chunk<DType::kBF16> : Chunk16<true> {};

}  // namespace so::cuda
