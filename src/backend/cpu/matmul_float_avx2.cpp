// AVX2/FMA matmul for float weights (F32, F16, BF16) against the f32 rows of x.
//
// Each output keeps one 8-lane accumulator, acc = fma(w[8 elements], x[8 elements], acc)
// along n_in, then y = hsum(acc). The tail past the last multiple of 8 runs through the same
// fma with zero padding, so every output sees the same operations in any tile.
//
// note: llama.cpp rounds the activations to f16/bf16 for F16/BF16 weights; we keep them f32,
// so logits of such models differ from llama.cpp's by that rounding.
#include <cstring>

#include "backend/cpu/matmul_avx2.h"
#include "tensor/fp16.h"

namespace so::cpu::detail::avx2 {
namespace {

template <DType kDType>
inline __m256 load_weights(const uint8_t* row, int64_t i) {
  if constexpr (kDType == DType::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  } else if constexpr (kDType == DType::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  } else {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
}

// The last n_in % 8 weights, zero padded to 8.
template <DType kDType>
inline __m256 load_weight_tail(const uint8_t* row, int64_t i, int64_t count) {
  alignas(32) float padded[8] = {};
  for (int64_t j = 0; j < count; ++j) {
    uint16_t half;
    if constexpr (kDType == DType::kF32) {
      std::memcpy(&padded[j], row + 4 * (i + j), 4);
    } else {
      std::memcpy(&half, row + 2 * (i + j), 2);
      padded[j] = kDType == DType::kF16 ? f16_to_f32(half) : bf16_to_fp32(half);
    }
  }
  return _mm256_load_ps(padded);
}

template <DType kDType>
struct TileFloat {
  const MatmulArgs& args;
  int64_t n_in, n_out;

  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    const uint8_t* w[kCols];
    for (int c = 0; c < kCols; ++c) w[c] = args.weight->row(col + c);
    const float* x[kRows];
    for (int r = 0; r < kRows; ++r)
      x[r] = reinterpret_cast<const float*>(args.activations + (row + r) * args.activation_stride);
    __m256 acc[kCols][kRows];
    for (int c = 0; c < kCols; ++c)
      for (int r = 0; r < kRows; ++r) acc[c][r] = _mm256_setzero_ps();

    const int64_t n_full = n_in / 8 * 8;
    constexpr int64_t kElementBytes = kDType == DType::kF32 ? 4 : 2, kLineElements = 64 / kElementBytes;
    const int64_t ahead = kCols * args.weight->row_bytes();
    for (int64_t i = 0; i < n_full; i += 8) {
      if (i % kLineElements == 0) {
        for (int c = 0; c < kCols; ++c) prefetch_ahead(w[c] + i * kElementBytes, ahead, 64);
      }
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        const __m256 wv = load_weights<kDType>(w[c], i);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) acc[c][r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[r] + i), acc[c][r]);
      }
    }
    if (n_full < n_in) {
      const int64_t count = n_in - n_full;
      for (int c = 0; c < kCols; ++c) {
        const __m256 wv = load_weight_tail<kDType>(w[c], n_full, count);
        for (int r = 0; r < kRows; ++r) {
          alignas(32) float padded[8] = {};
          std::memcpy(padded, x[r] + n_full, count * sizeof(float));
          acc[c][r] = _mm256_fmadd_ps(wv, _mm256_load_ps(padded), acc[c][r]);
        }
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) args.y[(row + r) * n_out + col + c] = hsum(acc[c][r]);
  }
};

template <DType kDType>
void compute_typed(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const TileFloat<kDType> tile{args, args.weight->shape[1], args.weight->shape[0]};
  if (row_end - row_begin == 1) {
    for_each_tile<8, 1>(tile, row_begin, row_end, col_begin, col_end);
  } else {
    for_each_tile<4, 3>(tile, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace

void compute_float(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  switch (args.weight->dtype) {
    case DType::kF32:
      return compute_typed<DType::kF32>(args, row_begin, row_end, col_begin, col_end);
    case DType::kF16:
      return compute_typed<DType::kF16>(args, row_begin, row_end, col_begin, col_end);
    default:
      return compute_typed<DType::kBF16>(args, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace so::cpu::detail::avx2
