// The Q4_0 / Q4_1 / Q8_0 / Q5_0 / MXFP4 tile kernels with AVX-512 (F/BW/VL/DQ) and AVX512-VNNI, bit for bit
// equal to the AVX2 ones in matmul_q32_avx2.h.
//
// note: a zmm register holds the 8-lane accumulators of two outputs that share an
// activation row (weight rows c and c + 1), so every output still gets exactly the AVX2
// sequence per block, acc = fma(broadcast(d_w * d_x), f32(8 exact integer lanes), acc), and
// the same final hsum of its 8 lanes. What AVX-512 buys is two outputs per instruction for
// the convert and the fma (and the 32 registers for a larger tile).
// Called only where cpu_features() has AVX-512 F, BW, VL, DQ and VNNI.
#include "backend/cpu/matmul_q32_avx2.h"

// note: GCC 12's AVX-512 headers build cast/extract intrinsics on _mm*_undefined_*(), which
// trips -W(maybe-)uninitialized once they are inlined; nothing here reads undefined lanes.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace so::cpu::detail::avx2 {
namespace {

// Two 32-byte halves in one zmm.
inline __m512i join(__m256i low, __m256i high) { return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1); }
inline __m512 join(__m256 low, __m256 high) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(low)), _mm256_castps_pd(high), 1));
}

template <Format kFormat>
struct Tile512 {
  using Block = typename BlockOf<kFormat>::Type;

  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  // The 32 weight bytes of block b of one row, as the AVX2 kernel (VNNI flavour) forms them.
  static __m256i weight_bytes(const Block& block) {
    if constexpr (kFormat == Format::kQ8_0) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.qs));
      return _mm256_xor_si256(raw, _mm256_set1_epi8(static_cast<char>(0x80)));
    } else if constexpr (kFormat == Format::kQ5_0) {
      return q5_0_values(block);
    } else if constexpr (kFormat == Format::kMxfp4) {
      return mxfp4_values(block);
    } else {
      return nibbles_in_order(block.qs);
    }
  }

  // A row's lane starts for block b in both halves (the unsigned weights' offsets, as in Tile32).
  static __m512i lane_start(const ActivationRow& x, int64_t b) {
    if constexpr (kFormat == Format::kQ4_0) return _mm512_set1_epi32(static_cast<const int32_t*>(x.s)[b]);
    if constexpr (kFormat == Format::kQ4_1) return _mm512_setzero_si512();
    const __m256i lane_offsets = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.lane_offsets + 8 * b));
    return _mm512_broadcast_i64x4(::so::cpu::detail::avx2::lane_start<kFormat>(lane_offsets));
  }

  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    constexpr int kPairs = (kCols + 1) / 2;
    // note: an odd last column pairs with itself; its duplicate result is not stored.
    const Block* w[2 * kPairs];
    for (int c = 0; c < 2 * kPairs; ++c) {
      w[c] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(args.weight->data) +
                                            (col + std::min(c, kCols - 1)) * weight_row_bytes);
    }
    ActivationRow x[kRows];
    for (int r = 0; r < kRows; ++r) x[r] = q8_32_row(args.activations + (row + r) * args.activation_stride, n_in);

    __m512 acc[kPairs][kRows], acc_min[kPairs][kRows];
    for (int p = 0; p < kPairs; ++p) {
      for (int r = 0; r < kRows; ++r) acc[p][r] = acc_min[p][r] = _mm512_setzero_ps();
    }
    const __m512i half_index = _mm512_set_epi32(8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int64_t group = 0; group < n_blocks; group += 8) {
      const int n = static_cast<int>(std::min<int64_t>(8, n_blocks - group));
      // (d_w * d_x) of the group's 8 blocks for both rows of a pair: [row c | row c + 1]
      alignas(64) __m512 scale[kPairs][kRows];
#pragma GCC unroll 8
      for (int p = 0; p < kPairs; ++p) {
        prefetch_ahead(w[2 * p] + group, kCols * weight_row_bytes, n * int64_t(sizeof(Block)));
        prefetch_ahead(w[2 * p + 1] + group, kCols * weight_row_bytes, n * int64_t(sizeof(Block)));
        __m256 d0, d1, m0, m1;
        if constexpr (kFormat == Format::kMxfp4) {
          d0 = load_mxfp4_half_scales(w[2 * p] + group, n);
          d1 = load_mxfp4_half_scales(w[2 * p + 1] + group, n);
        } else {
          load_block_scales(w[2 * p] + group, n, &d0, kFormat == Format::kQ4_1 ? &m0 : nullptr);
          load_block_scales(w[2 * p + 1] + group, n, &d1, kFormat == Format::kQ4_1 ? &m1 : nullptr);
        }
        const __m512 wd = join(d0, d1);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m256 xd = _mm256_loadu_ps(x[r].d + group);
          scale[p][r] = _mm512_mul_ps(wd, join(xd, xd));
          if constexpr (kFormat == Format::kQ4_1) {
            const __m256 xs = _mm256_loadu_ps(static_cast<const float*>(x[r].s) + group);
            acc_min[p][r] = _mm512_fmadd_ps(join(m0, m1), join(xs, xs), acc_min[p][r]);
          }
        }
      }
      for (int j = 0; j < n; ++j) {
        const int64_t b = group + j;
        const __m512i pick = _mm512_add_epi32(half_index, _mm512_set1_epi32(j));  // lane j of each half
        __m512i wq[kPairs];
#pragma GCC unroll 8
        for (int p = 0; p < kPairs; ++p) wq[p] = join(weight_bytes(w[2 * p][b]), weight_bytes(w[2 * p + 1][b]));
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m512i xq =
              _mm512_broadcast_i64x4(_mm256_load_si256(reinterpret_cast<const __m256i*>(x[r].qs + b * 32)));
          const __m512i start = lane_start(x[r], b);
#pragma GCC unroll 8
          for (int p = 0; p < kPairs; ++p) {
            const __m512i sums = _mm512_dpbusd_epi32(start, wq[p], xq);
            const __m512 d = _mm512_permutexvar_ps(pick, scale[p][r]);
            acc[p][r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sums), acc[p][r]);
          }
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int c = 0; c < kCols; ++c) {
        const int p = c / 2;
        const __m256 lanes = c % 2 == 0 ? _mm512_castps512_ps256(acc[p][r]) : _mm512_extractf32x8_ps(acc[p][r], 1);
        float sum = hsum(lanes);
        if constexpr (kFormat == Format::kQ4_1) {
          sum += hsum(c % 2 == 0 ? _mm512_castps512_ps256(acc_min[p][r]) : _mm512_extractf32x8_ps(acc_min[p][r], 1));
        }
        args.y[(row + r) * n_out + col + c] = sum;
      }
    }
  }
};

template <Format kFormat>
void compute_512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const int64_t n_in = args.weight->shape[1];
  const Tile512<kFormat> tile{args, n_in, args.weight->shape[0], n_in / 32, args.weight->row_bytes()};
  if (row_end - row_begin == 1) {
    for_each_tile<8, 1>(tile, row_begin, row_end, col_begin, col_end);
  } else {
    for_each_tile<8, 4>(tile, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace

void compute_q32_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                        int64_t col_end) {
  switch (args.weight->dtype) {
    case DType::kQ4_0:
      return compute_512<Format::kQ4_0>(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ4_1:
      return compute_512<Format::kQ4_1>(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ5_0:
      return compute_512<Format::kQ5_0>(args, row_begin, row_end, col_begin, col_end);
    case DType::kMXFP4:
      return compute_512<Format::kMxfp4>(args, row_begin, row_end, col_begin, col_end);
    default:
      return compute_512<Format::kQ8_0>(args, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace so::cpu::detail::avx2
