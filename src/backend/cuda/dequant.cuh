// Device dequantization of one 32-element chunk of a weight row, per dtype. Every weight
// dtype's row is a whole number of 32-element chunks: one block of the 32-blocks, or an
// eighth of a K-quant super-block. Layouts and arithmetic follow tensor/quants.cpp.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "tensor/dtype.h"

namespace so::cuda {

__device__ __forceinline__ float half_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
__device__ __forceinline__ float bf16_bits_to_float(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }

// Bytes of one 32-element chunk's storage as it repeats along a row (K-quants: the super-block
// is addressed separately).
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

// 16 bytes of nibbles at a 2-byte-aligned address (blocks of 18 or 34 bytes).
__device__ __forceinline__ void load_u16x8(const uint8_t* p, uint16_t (&w)[8]) {
  const uint16_t* q = reinterpret_cast<const uint16_t*>(p);
#pragma unroll
  for (int i = 0; i < 8; ++i) w[i] = q[i];
}

template <>
struct Chunk<DType::kQ4_0> {
  static __device__ __forceinline__ void load(const uint8_t* row, int64_t chunk, float (&v)[32]) {
    const uint8_t* block = row + chunk * 18;
    const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(block));
    uint16_t w[8];
    load_u16x8(block + 2, w);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int b0 = w[i] & 0xFF, b1 = w[i] >> 8;
      v[2 * i] = float((b0 & 0xF) - 8) * d;
      v[2 * i + 1] = float((b1 & 0xF) - 8) * d;
      v[2 * i + 16] = float((b0 >> 4) - 8) * d;
      v[2 * i + 17] = float((b1 >> 4) - 8) * d;
    }
  }
};

template <>
struct Chunk<DType::kQ4_1> {
  static __device__ __forceinline__ void load(const uint8_t* row, int64_t chunk, float (&v)[32]) {
    const uint8_t* block = row + chunk * 20;
    const uint16_t* header = reinterpret_cast<const uint16_t*>(block);
    const float d = half_bits_to_float(header[0]), m = half_bits_to_float(header[1]);
    // note: 20-byte blocks are only 4-byte aligned.
    const uint32_t* q = reinterpret_cast<const uint32_t*>(block + 4);
    const uint32_t words[4] = {q[0], q[1], q[2], q[3]};
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const int b = (words[i / 4] >> (8 * (i % 4))) & 0xFF;
      v[i] = float(b & 0xF) * d + m;
      v[i + 16] = float(b >> 4) * d + m;
    }
  }
};

template <>
struct Chunk<DType::kQ8_0> {
  static __device__ __forceinline__ void load(const uint8_t* row, int64_t chunk, float (&v)[32]) {
    const uint8_t* block = row + chunk * 34;
    const uint16_t* p = reinterpret_cast<const uint16_t*>(block);
    const float d = half_bits_to_float(p[0]);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const uint16_t w = p[1 + i];
      v[2 * i] = float(int8_t(w & 0xFF)) * d;
      v[2 * i + 1] = float(int8_t(w >> 8)) * d;
    }
  }
};

__device__ __forceinline__ void q4_k_scale_min_device(int j, const uint8_t* scales, int& scale, int& min) {
  if (j < 4) {
    scale = scales[j] & 63;
    min = scales[j + 4] & 63;
  } else {
    scale = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

template <>
struct Chunk<DType::kQ4_K> {
  static __device__ __forceinline__ void load(const uint8_t* row, int64_t chunk, float (&v)[32]) {
    const uint8_t* block = row + (chunk / 8) * 144;
    const int sub = int(chunk % 8);
    const uint16_t* header = reinterpret_cast<const uint16_t*>(block);
    const float d = half_bits_to_float(header[0]), dmin = half_bits_to_float(header[1]);
    int scale, min;
    q4_k_scale_min_device(sub, block + 4, scale, min);
    const float ds = d * float(scale), dm = dmin * float(min);
    const uint4* q = reinterpret_cast<const uint4*>(block + 16 + 32 * (sub / 2));
    const int shift = (sub % 2) * 4;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint4 u = q[i];
      const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int b = (words[j / 4] >> (8 * (j % 4))) & 0xFF;
        v[16 * i + j] = ds * float((b >> shift) & 0xF) - dm;
      }
    }
  }
};

template <>
struct Chunk<DType::kQ6_K> {
  static __device__ __forceinline__ void load(const uint8_t* row, int64_t chunk, float (&v)[32]) {
    const uint8_t* block = row + (chunk / 8) * 210;
    const int sub = int(chunk % 8);
    const int half = sub / 4, group = sub % 4;
    const uint8_t* ql = block + 64 * half + (group % 2) * 32;
    const uint8_t* qh = block + 128 + 32 * half;
    const int8_t* scales = reinterpret_cast<const int8_t*>(block + 192) + 8 * half + 2 * group;
    const float d = half_bits_to_float(uint16_t(block[208] | (block[209] << 8)));
    const int low_shift = (group / 2) * 4, high_shift = 2 * group;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int q = ((ql[l] >> low_shift) & 0xF) | (((qh[l] >> high_shift) & 3) << 4);
      v[l] = d * float(scales[l / 16]) * float(q - 32);
    }
  }
};

}  // namespace so::cuda
