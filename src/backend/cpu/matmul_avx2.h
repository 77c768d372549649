// Internal to backend/cpu: the AVX2/FMA matmul kernels, split by weight family across
// matmul_avx2.cpp (Q4_0, Q4_1, Q8_0 and dispatch), matmul_kquants_avx2.cpp (Q4_K, Q6_K),
// matmul_float_avx2.cpp (F32, F16, BF16) and quantize_avx2.cpp (activation packing).
// Include only from *_avx2.cpp files.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "backend/cpu/kernels.h"

namespace so::cpu::detail::avx2 {

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

// Packed activation rows of this ISA (quantize_avx2.cpp).
int64_t activation_row_bytes(DType weight_dtype, int64_t n_in);
void quantize_activation_row(DType weight_dtype, const float* x, int64_t n_in, void* out);

// Everything a tile kernel needs about one call.
struct MatmulArgs {
  const TensorView* weight;
  const uint8_t* activations;  // packed rows, or the f32 rows of x for float weights
  int64_t activation_stride;   // bytes between rows
  float* y;                    // (n_rows, n_out)
};

void compute_q4_0(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q4_1(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q8_0(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q4_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q6_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_float(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);

// Sum of 8 lanes in a fixed order (the same in every kernel, so tiles agree bit for bit).
inline float hsum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

// Walks [row_begin, row_end) x [col_begin, col_end) in tiles of up to kCols weight rows by
// kRows activation rows, calling tile.template run<cols, rows>(col, row) with the tile's
// exact size. note: tile kernels give each output the same operation sequence whatever the
// tile size, so how the range is cut never shows in the results.
template <int kCols, int kRows, typename Tile>
inline void for_each_tile(Tile& tile, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  for (int64_t col = col_begin; col < col_end; col += kCols) {
    const int cols = static_cast<int>(std::min<int64_t>(kCols, col_end - col));
    for (int64_t row = row_begin; row < row_end; row += kRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kRows, row_end - row));
      [&]<int... C, int... R>(std::integer_sequence<int, C...>, std::integer_sequence<int, R...>) {
        auto by_rows = [&]<int c>() { ((rows == R + 1 ? tile.template run<c, R + 1>(col, row) : void()), ...); };
        ((cols == C + 1 ? by_rows.template operator()<C + 1>() : void()), ...);
      }
      (std::make_integer_sequence<int, kCols>{}, std::make_integer_sequence<int, kRows>{});
    }
  }
}

}  // namespace so::cpu::detail::avx2
