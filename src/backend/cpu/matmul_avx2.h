// Internal to backend/cpu: the AVX2/FMA matmul kernels, split by weight family across
// matmul_avx2.cpp (Q4_0, Q4_1, Q8_0, Q5_0, MXFP4 and dispatch), matmul_kquants_avx2.cpp (K-quants),
// matmul_float_avx2.cpp (F32, F16, BF16) and quantize_avx2.cpp (activation packing), with
// the AVX-VNNI and AVX-512 variants of the 32-element block kernels in
// matmul_vnni_avx2.cpp and matmul_q32_avx512.cpp, and of Q4_K/Q5_K/Q2_K/Q3_K in
// matmul_kquants_avx512.cpp.
// Include only from *_avx2/_avx512 files.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "backend/cpu/activation_layout.h"
#include "backend/cpu/kernels.h"

namespace so::cpu::detail::avx2 {

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

// Q4_0, Q4_1, Q8_0, Q5_0, MXFP4 with maddubs + madd (matmul_avx2.cpp) or AVX-VNNI (matmul_vnni_avx2.cpp,
// only where cpu_features().avx_vnni); the two give bit-identical results.
void compute_q32_plain(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q32_vnni(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
// The same with AVX-512 + VNNI (matmul_q32_avx512.cpp), bit-identical to both.
void compute_q32_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
// The K-quants against packed Q8_K rows (matmul_kquants_avx2.cpp).
void compute_q4_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q5_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q6_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q2_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q3_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_float(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);

// note: the helpers below have internal linkage because matmul_vnni_avx2.cpp and
// matmul_q32_avx512.cpp compile them for wider ISAs than the other files; the linker must
// not pick their copies for them.
namespace {

// Sum of 8 lanes in a fixed order (the same in every kernel, so tiles agree bit for bit).
inline float hsum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

// A tile's kCols weight rows from column `col`, and its kRows activation rows from row `row`
// (read by `row_of`: q8_32_row or q8_k_row), with zeroed accumulators.
template <typename Block, int kCols>
inline void tile_weight_rows(const MatmulArgs& args, int64_t col, int64_t row_bytes, const Block* (&w)[kCols]) {
  for (int c = 0; c < kCols; ++c) {
    w[c] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(args.weight->data) + (col + c) * row_bytes);
  }
}
template <int kRows, typename RowOf>
inline void tile_activation_rows(const MatmulArgs& args, int64_t row, int64_t n_in, RowOf row_of,
                                 ActivationRow (&x)[kRows]) {
  for (int r = 0; r < kRows; ++r) x[r] = row_of(args.activations + (row + r) * args.activation_stride, n_in);
}
template <int kCols, int kRows>
inline void zero(__m256 (&acc)[kCols][kRows]) {
  for (int c = 0; c < kCols; ++c)
    for (int r = 0; r < kRows; ++r) acc[c][r] = _mm256_setzero_ps();
}

// Asks for the `bytes` from `first` two tiles ahead (`tile_bytes` apart: the same blocks of the weight
// row two tiles on) to be brought into L2. note: with few activation rows the weights stream from
// memory once, in rows often too short for the hardware prefetcher to run ahead (an expert's 1024
// inputs are 576 bytes of Q4_K), so tiles ask as they go. Into L2 and two tiles ahead, because the
// L1's few miss buffers capped the lines in flight: alternating binaries on 2 Zen 4 cores, one
// sequence's decode (tok/s) with no prefetch / L1 one tile ahead / L2 two tiles ahead: Qwen3-MoE
// Q4_K 95 / 150 / 161 (the memory's 25 GB/s), SmolLM2 Q4_1 95 / 180 / 207, Gemma 3 270M 46 / 65 / 90-96.
template <typename Block>
inline void prefetch_ahead(const Block* first, int64_t tile_bytes, int64_t bytes = sizeof(Block)) {
  const char* p = reinterpret_cast<const char*>(first) + 2 * tile_bytes;
  // note: an asm statement, because GCC 12's dead code elimination drops some __builtin_prefetch calls.
  for (int64_t offset = 0; offset < bytes; offset += 64) asm volatile("prefetcht1 %0" : : "m"(p[offset]));
}

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

}  // namespace
}  // namespace so::cpu::detail::avx2
