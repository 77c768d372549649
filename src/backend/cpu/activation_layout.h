// Internal to backend/cpu: the layout of the packed activation rows that the vectorized
// matmul kernels read (written by quantize_avx2.cpp). Plain C++, so tests can read it.
#pragma once

#include <cstdint>

namespace so::cpu::detail {

// note: packed activation rows are structure-of-arrays, not GGUF blocks: the quants of a
// row are contiguous and 32-byte aligned, and the block scales sit together after them as
// f32 (zero padded to a multiple of 8 blocks), so kernels load quants aligned, load the
// scales of 8 blocks in one vector and never convert an activation scale from f16. The
// values are exactly those of tensor/quants.h's quantizers (f16-rounded scales included).
//
// Q8_0 / Q8_1 row (block 32):  qs (n_in) int8 | d (padded blocks) f32 | s (padded blocks)
//   Q8_1: s = f16(d * sum(qs)) as f32.  Q8_0: s = sum(qs) as int32 (Q4_0's -8 offset).
// Q8_K row (block 256):         qs (n_in) int8 | d (n_in/256) f32 | bsums (n_in/16) int16
struct ActivationRow {
  const int8_t* qs;
  const float* d;
  const void* s;         // Q8_0 / Q8_1
  const int16_t* bsums;  // Q8_K
};

inline int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }
inline int64_t q8_32_padded_blocks(int64_t n_in) { return round_up(n_in / 32, 8); }

inline int64_t q8_32_row_bytes(int64_t n_in) { return round_up(n_in + 8 * q8_32_padded_blocks(n_in), 64); }
inline int64_t q8_k_row_bytes(int64_t n_in) { return round_up(n_in + 4 * (n_in / 256) + 2 * (n_in / 16), 64); }

inline ActivationRow q8_32_row(const uint8_t* row, int64_t n_in) {
  const auto* d = reinterpret_cast<const float*>(row + n_in);
  return {reinterpret_cast<const int8_t*>(row), d, d + q8_32_padded_blocks(n_in), nullptr};
}
inline ActivationRow q8_k_row(const uint8_t* row, int64_t n_in) {
  const auto* d = reinterpret_cast<const float*>(row + n_in);
  return {reinterpret_cast<const int8_t*>(row), d, nullptr, reinterpret_cast<const int16_t*>(d + n_in / 256)};
}

}  // namespace so::cpu::detail
