// Internal to backend/cpu: the tile kernel for the 32-element block weights (Q4_0, Q4_1,
// Q8_0, Q5_0, MXFP4), included by matmul_avx2.cpp (plain AVX2) and matmul_vnni_avx2.cpp (the same code
// with AVX-VNNI's vpdpbusd for the integer dot products); matmul_q32_avx512.cpp reuses its
// helpers. Include only from those files.
//
// Every output element y[r][o] keeps one 8-lane f32 accumulator. Per block b of 32:
//   acc = fma(broadcast(d_w[o][b] * d_x[r][b]), f32(8 lanes of exact integer sums), acc)
// and at the end y = hsum(acc) (+ the Q4_1 min term, accumulated 8 blocks per fma). The
// integer lanes are exact however they are computed (maddubs + madd or vpdpbusd, any tile),
// so every path gives every output the same float operations: batch invariance, and the
// AVX2 and VNNI kernels agree bit for bit.
#pragma once

#include "backend/cpu/matmul_avx2.h"
#include "tensor/blocks.h"

namespace so::cpu::detail::avx2 {
// note: internal linkage on purpose. The including files compile this code for different
// ISAs, so their copies must not be merged by the linker.
namespace {

enum class Format { kQ4_0, kQ4_1, kQ8_0, kQ5_0, kMxfp4 };

template <Format kFormat>
struct BlockOf;
template <>
struct BlockOf<Format::kQ4_0> {
  using Type = BlockQ4_0;
};
template <>
struct BlockOf<Format::kQ4_1> {
  using Type = BlockQ4_1;
};
template <>
struct BlockOf<Format::kQ8_0> {
  using Type = BlockQ8_0;
};
template <>
struct BlockOf<Format::kQ5_0> {
  using Type = BlockQ5_0;
};
template <>
struct BlockOf<Format::kMxfp4> {
  using Type = BlockMXFP4;
};

// Scales (and Q4_1 mins) of n <= 8 consecutive blocks as f32 lanes; lanes >= n are 0.
// note: d (and m) open every block, so one masked gather of the first 4 bytes of each block
// fetches them all; masked lanes are never read, so the last group cannot run off the row.
template <typename Block>
inline void load_block_scales(const Block* blocks, int n, __m256* d, __m256* m) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i offsets = _mm256_mullo_epi32(lane, _mm256_set1_epi32(static_cast<int>(sizeof(Block))));
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  const __m256i heads =
      _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), reinterpret_cast<const int*>(blocks), offsets, mask, 1);
  // low halves (d) and high halves (m of Q4_1) as u16, then f32
  const __m256i halves =
      _mm256_packus_epi32(_mm256_and_si256(heads, _mm256_set1_epi32(0xFFFF)), _mm256_srli_epi32(heads, 16));
  const __m256i ordered = _mm256_permute4x64_epi64(halves, 0xD8);  // d0..7 | m0..7
  *d = _mm256_cvtph_ps(_mm256_castsi256_si128(ordered));
  if (m != nullptr) *m = _mm256_cvtph_ps(_mm256_extracti128_si256(ordered, 1));
}

// MXFP4: half the E8M0 scales 2^(e - 127) of n <= 8 blocks, as mxfp4_half_scale computes them.
inline __m256 load_mxfp4_half_scales(const BlockMXFP4* blocks, int n) {
  alignas(32) int32_t e[8] = {};
  for (int i = 0; i < n; ++i) e[i] = blocks[i].e;
  const __m256i exponent = _mm256_load_si256(reinterpret_cast<const __m256i*>(e));
  // e >= 2: the float with exponent field e - 1; e < 2: the subnormal 2^21 << e bits.
  const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(exponent, _mm256_set1_epi32(1)), 23);
  const __m256i subnormal = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), exponent);
  const __m256i small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), exponent);
  const __m256i bits = _mm256_blendv_epi8(normal, subnormal, small);
  // note: lanes past n hold e = 0 (a subnormal); their products are never read.
  return _mm256_castsi256_ps(bits);
}

// Q4_0-layout nibbles of a block in element order: low nibbles of its 16 bytes, then high ones.
// note: the 16 bytes go to both halves; shifting the high half's 64-bit lanes by 4 brings each
// byte's high nibble down, and the mask drops what crossed over.
inline __m256i nibbles_in_order(const uint8_t* qs) {
  const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

// Q5_0's values q = nibble + 16 * fifth bit (0..31, unsigned; the -16 is in the lane starts).
inline __m256i q5_0_values(const BlockQ5_0& block) {
  uint32_t qh;
  __builtin_memcpy(&qh, block.qh, sizeof(qh));
  // Byte i takes byte i / 8 of qh and keeps bit i % 8: set where element i has its fifth bit.
  const __m256i byte_of_bit = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                               3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
  const __m256i spread = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(qh)), byte_of_bit), bit);
  const __m256i fifth = _mm256_and_si256(_mm256_cmpeq_epi8(spread, bit), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(nibbles_in_order(block.qs), fifth);
}

// MXFP4's values as kMxfp4Values + 12 (0..24, unsigned; the -12 is in the lane starts).
inline __m256i mxfp4_values(const BlockMXFP4& block) {
  const __m128i table = _mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(table), nibbles_in_order(block.qs));
}

// The lane starts of a block of unsigned weights from its -128 * (quad sums) lane offsets: -16 *
// quads for Q5_0, -12 * quads for MXFP4 (exact: the offsets are multiples of 128).
template <Format kFormat>
inline __m256i lane_start(__m256i lane_offsets) {
  if constexpr (kFormat == Format::kQ5_0) return _mm256_srai_epi32(lane_offsets, 3);
  if constexpr (kFormat == Format::kMxfp4) {
    return _mm256_add_epi32(_mm256_srai_epi32(lane_offsets, 4), _mm256_srai_epi32(lane_offsets, 5));
  }
  return lane_offsets;
}

// One tile: kCols weight rows x kRows activation rows. The integer lanes of one block:
//   Q4_1: nibbles . x                      (unsigned weights, signed activations)
//   Q4_0: nibbles . x, each lane starting from the row's offset -sum(x) (the -8)
//   Q8_0, AVX2: |w| . (x with w's sign)    (keeps maddubs' first operand unsigned)
//   Q8_0, VNNI: (w + 128) . x, each lane starting from -128 * (its 4 quants of x)
//   Q5_0: (q + 16) . x, each lane starting from -16 * (its 4 quants of x)
//   MXFP4: (v + 12) . x, each lane starting from -12 * (its 4 quants of x)
// (Q5_0's and MXFP4's lanes are then those of the signed values, as llama.cpp's dot forms them.)
// note: maddubs + madd never saturate here: |u| <= 128 and |s| <= 127.
template <Format kFormat, bool kVnni>
struct Tile32 {
  using Block = typename BlockOf<kFormat>::Type;

  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    const Block* w[kCols];
    tile_weight_rows(args, col, weight_row_bytes, w);
    ActivationRow x[kRows];
    tile_activation_rows(args, row, n_in, q8_32_row, x);
    __m256 acc[kCols][kRows], acc_min[kCols][kRows];
    zero(acc);
    zero(acc_min);

    for (int64_t group = 0; group < n_blocks; group += 8) {
      const int n = static_cast<int>(std::min<int64_t>(8, n_blocks - group));
      alignas(32) float scale[kCols][kRows][8];  // d_w * d_x per block of the group
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        prefetch_ahead(w[c] + group, kCols * weight_row_bytes, n * int64_t(sizeof(Block)));
        __m256 wd, wm;
        if constexpr (kFormat == Format::kMxfp4) {
          wd = load_mxfp4_half_scales(w[c] + group, n);
        } else {
          load_block_scales(w[c] + group, n, &wd, kFormat == Format::kQ4_1 ? &wm : nullptr);
        }
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
            const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[c][b].qs));
            if constexpr (kVnni) {
              wq[c] = _mm256_xor_si256(raw, _mm256_set1_epi8(static_cast<char>(0x80)));
            } else {
              wsign[c] = raw;
              wq[c] = _mm256_sign_epi8(raw, raw);
            }
          } else if constexpr (kFormat == Format::kQ5_0) {
            wq[c] = q5_0_values(w[c][b]);
          } else if constexpr (kFormat == Format::kMxfp4) {
            wq[c] = mxfp4_values(w[c][b]);
          } else {
            wq[c] = nibbles_in_order(w[c][b].qs);
          }
        }
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(x[r].qs + b * 32));
          __m256i start = _mm256_setzero_si256();
          if constexpr (kFormat == Format::kQ4_0) start = _mm256_set1_epi32(static_cast<const int32_t*>(x[r].s)[b]);
          if constexpr (kFormat == Format::kQ8_0 || kFormat == Format::kQ5_0 || kFormat == Format::kMxfp4) {
            start = lane_start<kFormat>(_mm256_load_si256(reinterpret_cast<const __m256i*>(x[r].lane_offsets + 8 * b)));
          }
#pragma GCC unroll 8
          for (int c = 0; c < kCols; ++c) {
            __m256i sums;
            if constexpr (kVnni) {
              sums = _mm256_dpbusd_avx_epi32(start, wq[c], xq);
            } else {
              const __m256i xs = kFormat == Format::kQ8_0 ? _mm256_sign_epi8(xq, wsign[c]) : xq;
              sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wq[c], xs), _mm256_set1_epi16(1));
              if constexpr (kFormat == Format::kQ4_0 || kFormat == Format::kQ5_0 || kFormat == Format::kMxfp4) {
                sums = _mm256_add_epi32(sums, start);
              }
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

template <Format kFormat, bool kVnni>
void compute_32(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const int64_t n_in = args.weight->shape[1];
  const Tile32<kFormat, kVnni> tile{args, n_in, args.weight->shape[0], n_in / 32, args.weight->row_bytes()};
  if (row_end - row_begin == 1) {
    for_each_tile<4, 1>(tile, row_begin, row_end, col_begin, col_end);
  } else {
    for_each_tile<4, 3>(tile, row_begin, row_end, col_begin, col_end);
  }
}

template <bool kVnni>
void compute_q32(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  switch (args.weight->dtype) {
    case DType::kQ4_0:
      return compute_32<Format::kQ4_0, kVnni>(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ4_1:
      return compute_32<Format::kQ4_1, kVnni>(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ5_0:
      return compute_32<Format::kQ5_0, kVnni>(args, row_begin, row_end, col_begin, col_end);
    case DType::kMXFP4:
      return compute_32<Format::kMxfp4, kVnni>(args, row_begin, row_end, col_begin, col_end);
    default:
      return compute_32<Format::kQ8_0, kVnni>(args, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace
}  // namespace so::cpu::detail::avx2
