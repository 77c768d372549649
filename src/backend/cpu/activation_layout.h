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
// Q8_0 / Q8_1 row (block 32):
//   qs (n_in) int8 | d (padded blocks) f32 | s (padded blocks) | lane offsets (Q8_0 weights)
//   Q8_1 (Q4_1 weights): s = f16(d * sum(qs)) as f32.
//   Q8_0 for Q4_0 weights: s = -sum(qs) as int32, the value each of the 8 integer lanes of
//     a block's dot product starts from: 8 lanes x -sum(qs) is the nibbles' -8 offset.
//   Q8_0 for Q8_0 (Q5_0, MXFP4) weights: lane offsets (n_in/32, 8) int32 = -128 * (sum of
//     the 4 quants of that lane); the VNNI kernel adds 128 to the weights to make them
//     unsigned, and these take it back out lane by lane, so its lanes equal the plain AVX2
//     kernel's (Q5_0 and MXFP4 take out their +16 and +12 from the same sums).
// Q8_K row (block 256):  qs (n_in) int8 | d (n_in/256) f32 | bsums (n_in/16) int16
struct ActivationRow {
  const int8_t* qs;
  const float* d;
  const void* s;                // Q8_0 / Q8_1
  const int32_t* lane_offsets;  // Q8_0 for Q8_0 weights
  const int16_t* bsums;         // Q8_K
};

inline int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }
inline int64_t q8_32_padded_blocks(int64_t n_in) { return round_up(n_in / 32, 8); }

inline int64_t q8_32_row_bytes(int64_t n_in, bool lane_offsets) {
  return round_up(n_in + 8 * q8_32_padded_blocks(n_in) + (lane_offsets ? n_in : 0), 64);
}
inline int64_t q8_k_row_bytes(int64_t n_in) { return round_up(n_in + 4 * (n_in / 256) + 2 * (n_in / 16), 64); }

inline ActivationRow q8_32_row(const uint8_t* row, int64_t n_in) {
  const auto* d = reinterpret_cast<const float*>(row + n_in);
  const float* s = d + q8_32_padded_blocks(n_in);
  return {reinterpret_cast<const int8_t*>(row), d, s, reinterpret_cast<const int32_t*>(s + q8_32_padded_blocks(n_in)),
          nullptr};
}
inline ActivationRow q8_k_row(const uint8_t* row, int64_t n_in) {
  const auto* d = reinterpret_cast<const float*>(row + n_in);
  return {reinterpret_cast<const int8_t*>(row), d, nullptr, nullptr, reinterpret_cast<const int16_t*>(d + n_in / 256)};
}

}  // namespace so::cpu::detail
