// AVX2/FMA matmul for the 32-element block weights (Q4_0, Q4_1, Q8_0) and the dispatch of
// every weight dtype to its kernel.
//
// Every output element y[r][o] keeps one 8-lane f32 accumulator. Per block b of 32:
//   acc = fma(broadcast(d_w[o][b] * d_x[r][b]), f32(8 partial integer sums), acc)
// and at the end y = hsum(acc) (+ the Q4_1 min term, accumulated 8 blocks per fma). The
// integer partial sums are exact however they are computed, so tiles of any size give
// every output the same float operations: batch invariance by construction.
#include "backend/cpu/matmul_avx2.h"

#include "backend/cpu/matmul_driver.h"
#include "backend/cpu/matmul_internal.h"
#include "base/check.h"
#include "tensor/blocks.h"

namespace so::cpu::detail {
namespace avx2 {
namespace {

// 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15), then high (16..31).
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 8 int32 lanes of partial sums of unsigned u[i] * signed s[i] (4 products each).
// note: u <= 128 and |s| <= 127 keep maddubs' int16 pair sums from saturating.
inline __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// The three formats differ in how a block's 32 quants meet the activation's 32:
//   Q4_1: nibbles (unsigned) . x; the block's m meets the activation's s separately.
//   Q4_0: nibbles . x - 8 * sum(x), with sum(x) from the packed activation row.
//   Q8_0: |w| . (x with w's sign), the sign trick that keeps maddubs unsigned x signed.
enum class Format { kQ4_0, kQ4_1, kQ8_0 };

template <Format kFormat>
struct BlockTraits;
template <>
struct BlockTraits<Format::kQ4_0> {
  using Block = BlockQ4_0;
};
template <>
struct BlockTraits<Format::kQ4_1> {
  using Block = BlockQ4_1;
};
template <>
struct BlockTraits<Format::kQ8_0> {
  using Block = BlockQ8_0;
};

// Scales (and Q4_1 mins) of n <= 8 consecutive blocks as f32 lanes; lanes >= n are 0.
// note: d (and m) open every block, so one masked gather of the first 4 bytes of each block
// fetches them all; masked lanes are never read, so the last group cannot run off the row.
template <typename Block>
inline void load_block_scales(const Block* blocks, int n, __m256* d, __m256* m) {
  const __m256i offsets =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(sizeof(Block))));
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i heads =
      _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), reinterpret_cast<const int*>(blocks), offsets, mask, 1);
  // low halves (d) and high halves (m for Q4_1) as u16, then to f32
  const __m256i halves =
      _mm256_packus_epi32(_mm256_and_si256(heads, _mm256_set1_epi32(0xFFFF)), _mm256_srli_epi32(heads, 16));
  const __m256i ordered = _mm256_permute4x64_epi64(halves, 0xD8);  // d0..7 | m0..7
  *d = _mm256_cvtph_ps(_mm256_castsi256_si128(ordered));
  if (m != nullptr) *m = _mm256_cvtph_ps(_mm256_extracti128_si256(ordered, 1));
}

// One tile: kCols weight rows x kRows activation rows. Per output, in order:
//   for each group of 8 blocks:  (Q4_1) acc_min = fma(m_w[8], s_x[8], acc_min)
//     for each block b:          acc = fma(broadcast(d_w[b] * d_x[b]), f32(int lanes), acc)
//   y = hsum(acc) (+ hsum(acc_min))
template <Format kFormat>
struct Tile32 {
  using Block = typename BlockTraits<kFormat>::Block;

  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    const Block* w[kCols];
    for (int c = 0; c < kCols; ++c) {
      w[c] =
          reinterpret_cast<const Block*>(static_cast<const uint8_t*>(args.weight->data) + (col + c) * weight_row_bytes);
    }
    ActivationRow x[kRows];
    for (int r = 0; r < kRows; ++r) x[r] = q8_32_row(args.activations + (row + r) * args.activation_stride, n_in);

    __m256 acc[kCols][kRows], acc_min[kCols][kRows];
    for (int c = 0; c < kCols; ++c) {
      for (int r = 0; r < kRows; ++r) acc[c][r] = acc_min[c][r] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t group = 0; group < n_blocks; group += 8) {
      const int n = static_cast<int>(std::min<int64_t>(8, n_blocks - group));
      alignas(32) float scale[kCols][kRows][8];  // d_w * d_x per block of the group
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        __m256 wd, wm;
        load_block_scales(w[c] + group, n, &wd, kFormat == Format::kQ4_1 ? &wm : nullptr);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          _mm256_store_ps(scale[c][r], _mm256_mul_ps(wd, _mm256_loadu_ps(x[r].d + group)));
          if constexpr (kFormat == Format::kQ4_1) {
            const __m256 xs = _mm256_loadu_ps(static_cast<const float*>(x[r].s) + group);
            acc_min[c][r] = _mm256_fmadd_ps(wm, xs, acc_min[c][r]);
          }
        }
      }
      for (int j = 0; j < n; ++j) {
        const int64_t b = group + j;
        __m256i wq[kCols], wsign[kCols];
#pragma GCC unroll 8
        for (int c = 0; c < kCols; ++c) {
          if constexpr (kFormat == Format::kQ8_0) {
            wsign[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[c][b].qs));
            wq[c] = _mm256_sign_epi8(wsign[c], wsign[c]);
          } else {
            const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[c][b].qs));
            wq[c] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4);
          }
        }
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(x[r].qs + b * 32));
#pragma GCC unroll 8
          for (int c = 0; c < kCols; ++c) {
            __m256i sums;
            if constexpr (kFormat == Format::kQ8_0) {
              sums = dot_u8_s8(wq[c], _mm256_sign_epi8(xq, wsign[c]));
            } else {
              sums = dot_u8_s8(wq[c], xq);
            }
            if constexpr (kFormat == Format::kQ4_0) {
              // 8 lanes each minus sum(x): the total drops by 8 * sum(x), the -8 offset.
              sums = _mm256_sub_epi32(sums, _mm256_set1_epi32(static_cast<const int32_t*>(x[r].s)[b]));
            }
            acc[c][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&scale[c][r][j]), _mm256_cvtepi32_ps(sums), acc[c][r]);
          }
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int c = 0; c < kCols; ++c) {
        float sum = hsum(acc[c][r]);
        if constexpr (kFormat == Format::kQ4_1) sum += hsum(acc_min[c][r]);
        args.y[(row + r) * n_out + col + c] = sum;
      }
    }
  }
};

template <Format kFormat>
void compute_32(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const int64_t n_in = args.weight->shape[1];
  const Tile32<kFormat> tile{args, n_in, args.weight->shape[0], n_in / 32, args.weight->row_bytes()};
  if (row_end - row_begin == 1) {
    for_each_tile<4, 1>(tile, row_begin, row_end, col_begin, col_end);
  } else {
    for_each_tile<2, 4>(tile, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace

void compute_q4_0(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_32<Format::kQ4_0>(args, row_begin, row_end, col_begin, col_end);
}
void compute_q4_1(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_32<Format::kQ4_1>(args, row_begin, row_end, col_begin, col_end);
}
void compute_q8_0(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_32<Format::kQ8_0>(args, row_begin, row_end, col_begin, col_end);
}

namespace {

void compute(const TensorView& weight, const uint8_t* activations, int64_t activation_stride, int64_t row_begin,
             int64_t row_end, int64_t col_begin, int64_t col_end, float* y) {
  const MatmulArgs args{&weight, activations, activation_stride, y};
  switch (weight.dtype) {
    case DType::kQ4_0:
      return compute_q4_0(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ4_1:
      return compute_q4_1(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ8_0:
      return compute_q8_0(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ4_K:
      return compute_q4_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ6_K:
      return compute_q6_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return compute_float(args, row_begin, row_end, col_begin, col_end);
    default:
      SO_CHECK(false, "matmul: unsupported weight dtype ", dtype_name(weight.dtype));
  }
}

}  // namespace
}  // namespace avx2

const MatmulKernelSet& avx2_matmul_kernels() {
  static const MatmulKernelSet kernels{avx2::activation_row_bytes, avx2::quantize_activation_row, avx2::compute};
  return kernels;
}

}  // namespace so::cpu::detail
