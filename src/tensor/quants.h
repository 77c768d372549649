// Scalar reference conversions between f32 and every block type the engine computes with.
// Optimized kernels in backend/cpu are tested against these.
#pragma once

#include <cstdint>
#include <span>

#include "tensor/dtype.h"

namespace so {

// Row of n elements of `dtype` (F32/F16/BF16/Q4_0/Q4_1/Q8_0/Q4_K/Q6_K) -> f32.
// n must be a multiple of the block size.
void dequantize_row(DType dtype, const void* source, float* destination, int64_t n);

// f32 -> activation blocks, as llama.cpp quantizes activations for the integer dot
// products: Q8_0 (for Q4_0/Q8_0 weights), Q8_1 (for Q4_1), Q8_K (for Q4_K/Q6_K).
void quantize_row_q8_0(const float* source, void* destination, int64_t n);
void quantize_row_q8_1(const float* source, void* destination, int64_t n);
void quantize_row_q8_k(const float* source, void* destination, int64_t n);

// f32 -> weight blocks (round to nearest). For tests and for converting F32 weights;
// the reference quantizers for parity tests are the gguf package's.
void quantize_row_q4_0(const float* source, void* destination, int64_t n);
void quantize_row_q4_1(const float* source, void* destination, int64_t n);

// Round half to even, as the x86 quantizers do.
inline int round_to_nearest_int(float value) {
  // note: adding 1.5 * 2^23 pushes the fraction out of the mantissa; valid for |value| < 2^22.
  float shifted = value + 12582912.0f;
  int32_t bits;
  __builtin_memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

}  // namespace so
