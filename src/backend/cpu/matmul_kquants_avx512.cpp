// K-quant tiles with AVX-512 BW and VNNI below the panel thresholds (one sequence's decode, a
// batch's experts): Q4_K and Q5_K (Qwen3-MoE Q4_K on 2 Zen 4 cores, both prefetching: one sequence
// +6-8% over the AVX2 tile, 32 rows +5-10%), Q2_K and Q3_K.
//
// note: a zmm holds two groups of 32 weights (Q4_K/Q5_K: the low or high nibbles of 64 bytes,
// sub-blocks 4h + n and 4h + 2 + n; Q2_K/Q3_K: groups 2p and 2p + 1), so one maddubs and one
// vpdpwssd do what maddubs, madd and add do per group in AVX2. The halves' int32 lanes are added
// at the end of each block, which gives exactly the AVX2 tile's 8 lanes (integer sums, any order),
// and from there every float operation is the AVX2 tile's (the shared add_*_block helpers): the
// results are bit-identical at any tile size and ISA.
// Called only where cpu_features() has AVX-512 F, BW, VL, DQ and VNNI.
#include <type_traits>

#include "backend/cpu/matmul_kquants_avx2.h"
#include "tensor/blocks.h"

// note: GCC 12's AVX-512 headers build cast/extract intrinsics on _mm*_undefined_*(), which
// trips -W(maybe-)uninitialized once they are inlined; nothing here reads undefined lanes.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace so::cpu::detail::avx2 {
namespace {

inline __m512i join(__m256i low, __m256i high) { return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1); }

// Pair p = 2h + n of a block (h: which 64 weight bytes, n: low or high nibbles) is sub-block
// 4h + n in the low 256 bits and 4h + 2 + n in the high 256 bits.
constexpr int pair_sub_block(int pair, int half) { return 4 * (pair / 2) + pair % 2 + 2 * half; }

// vpshufb masks that copy each pair's two scale words (int16 words 0..7 of every 128-bit lane)
// to all words of their half, and the Q5_K qh bit that tops each pair's values (bit k of every
// qh byte tops sub-block k).
struct PairTables {
  alignas(64) uint8_t scale_word[4][64];
  alignas(64) uint8_t fifth_bit[4][64];
  constexpr PairTables() : scale_word(), fifth_bit() {
    for (int pair = 0; pair < 4; ++pair) {
      for (int i = 0; i < 64; ++i) {
        const int sub_block = pair_sub_block(pair, i / 32);
        scale_word[pair][i] = uint8_t(2 * sub_block + (i & 1));
        fifth_bit[pair][i] = uint8_t(1u << sub_block);
      }
    }
  }
};
constexpr PairTables kPairTables;

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }

template <bool kFifthBit>
struct TileQ45K512 {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    const Block* w[kCols];
    tile_weight_rows(args, col, weight_row_bytes, w);
    ActivationRow x[kRows];
    tile_activation_rows(args, row, n_in, q8_k_row, x);
    float acc[kCols][kRows] = {};

    const __m512i m4 = _mm512_set1_epi8(0x0F);
    [[maybe_unused]] const __m512i sixteen = _mm512_set1_epi8(16);
    for (int64_t b = 0; b < n_blocks; ++b) {
      __m512i xq[kRows][4];  // each pair's activations: elements 128h + 32n + [0, 32) and + [64, 96)
      __m128i sums32[kRows];
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        const int8_t* q8 = x[r].qs + b * 256;
        for (int pair = 0; pair < 4; ++pair) {
          const int8_t* first = q8 + 128 * (pair / 2) + 32 * (pair % 2);
          xq[r][pair] = join(load(first), load(first + 64));
        }
        sums32[r] = sums_of_32(x[r], b);
      }
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        prefetch_ahead(w[c] + b, kCols * weight_row_bytes);
        const __m256i scales_mins = q4_k_scales_mins(w[c][b].scales);
        const __m512i scales = _mm512_broadcast_i32x4(_mm256_castsi256_si128(scales_mins));
        const __m128i mins = _mm256_extracti128_si256(scales_mins, 1);
        [[maybe_unused]] __m512i fifth_bits;
        if constexpr (kFifthBit) fifth_bits = _mm512_broadcast_i64x4(load(w[c][b].qh));
        __m512i sumi[kRows];
        for (int r = 0; r < kRows; ++r) sumi[r] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m512i bits = load512(w[c][b].qs + 64 * h);
          __m512i u[2] = {_mm512_and_si512(bits, m4), _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4)};
#pragma GCC unroll 2
          for (int n = 0; n < 2; ++n) {
            const int pair = 2 * h + n;
            if constexpr (kFifthBit) {
              const __mmask64 top = _mm512_test_epi8_mask(fifth_bits, load512(kPairTables.fifth_bit[pair]));
              u[n] = _mm512_mask_add_epi8(u[n], top, u[n], sixteen);
            }
            const __m512i scale = _mm512_shuffle_epi8(scales, load512(kPairTables.scale_word[pair]));
#pragma GCC unroll 8
            for (int r = 0; r < kRows; ++r) {
              sumi[r] = _mm512_dpwssd_epi32(sumi[r], _mm512_maddubs_epi16(u[n], xq[r][pair]), scale);
            }
          }
        }
        const float wd = f16_to_f32(w[c][b].d), wdmin = f16_to_f32(w[c][b].dmin);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m256i lanes = _mm256_add_epi32(_mm512_castsi512_si256(sumi[r]), _mm512_extracti64x4_epi64(sumi[r], 1));
          acc[c][r] = add_kquant_block(acc[c][r], total(lanes), total(_mm_madd_epi16(mins, sums32[r])), wd, wdmin, x[r].d[b]);
        }
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) args.y[(row + r) * n_out + col + c] = acc[c][r];
  }
};

// Q2_K/Q3_K: pair p holds groups 2p (low 256 bits) and 2p + 1 (high), elements 64p .. 64p + 63,
// both from the same 32 bytes of qs at their own shift (group g = 4h + j: bits 2j of
// qs[32h..32h + 31]); 128-bit lane k of the pair is sub-block 4p + k. Per pair: each half's shift,
// Q3_K's third bit (bit g of every hmask byte), and the vpermw index of each lane's scale word.
struct LowBitsPairTables {
  alignas(64) uint16_t shift[4][32];
  alignas(64) uint8_t third_bit[4][64];
  alignas(64) uint16_t scale_index[4][32];
  constexpr LowBitsPairTables() : shift(), third_bit(), scale_index() {
    for (int pair = 0; pair < 4; ++pair) {
      for (int word = 0; word < 32; ++word) {
        shift[pair][word] = uint16_t(2 * ((2 * pair + word / 16) % 4));
        scale_index[pair][word] = uint16_t(4 * pair + word / 8);
      }
      for (int i = 0; i < 64; ++i) third_bit[pair][i] = uint8_t(1u << (2 * pair + i / 32));
    }
  }
};
constexpr LowBitsPairTables kLowBitsPairTables;

// The pair's unsigned values: Q2_K's 2 bits, Q3_K's q + 4 (the third bit adds 4).
inline __m512i low_bits_values(const BlockQ2_K& block, int pair) {
  const __m512i packed = _mm512_broadcast_i64x4(load(block.qs + 32 * (pair / 2)));
  return _mm512_and_si512(_mm512_srlv_epi16(packed, load512(kLowBitsPairTables.shift[pair])), _mm512_set1_epi8(3));
}
inline __m512i low_bits_values(const BlockQ3_K& block, int pair) {
  const __m512i packed = _mm512_broadcast_i64x4(load(block.qs + 32 * (pair / 2)));
  const __m512i low = _mm512_and_si512(_mm512_srlv_epi16(packed, load512(kLowBitsPairTables.shift[pair])),
                                       _mm512_set1_epi8(3));
  const __mmask64 third =
      _mm512_test_epi8_mask(_mm512_broadcast_i64x4(load(block.hmask)), load512(kLowBitsPairTables.third_bit[pair]));
  return _mm512_mask_add_epi8(low, third, low, _mm512_set1_epi8(4));
}

template <typename Format>
struct TileLowBitsK512 {
  using Block = typename Format::Block;
  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    const Block* w[kCols];
    tile_weight_rows(args, col, weight_row_bytes, w);
    ActivationRow x[kRows];
    tile_activation_rows(args, row, n_in, q8_k_row, x);
    float acc[kCols][kRows] = {};

    for (int64_t b = 0; b < n_blocks; ++b) {
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        prefetch_ahead(w[c] + b, kCols * weight_row_bytes);
        __m256i scales, mins;
        Format::unpack(w[c][b], &scales, &mins);
        const __m512i scales512 = _mm512_castsi256_si512(scales);
        __m512i sumi[kRows];
        for (int r = 0; r < kRows; ++r) sumi[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int pair = 0; pair < 4; ++pair) {
          const __m512i u = low_bits_values(w[c][b], pair);
          const __m512i scale = _mm512_permutexvar_epi16(load512(kLowBitsPairTables.scale_index[pair]), scales512);
#pragma GCC unroll 8
          for (int r = 0; r < kRows; ++r) {
            const __m512i xq = load512(x[r].qs + b * 256 + 64 * pair);
            sumi[r] = _mm512_dpwssd_epi32(sumi[r], _mm512_maddubs_epi16(u, xq), scale);
          }
        }
        const float wd = Format::d(w[c][b]);
        [[maybe_unused]] const float wdmin = Format::dmin(w[c][b]);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m256i bsums = load(x[r].bsums + b * 16);
          __m256i lanes = _mm256_add_epi32(_mm512_castsi512_si256(sumi[r]), _mm512_extracti64x4_epi64(sumi[r], 1));
          lanes = _mm256_add_epi32(low_bits_start<Format>(scales, bsums), lanes);
          acc[c][r] = add_kquant_block(acc[c][r], total(lanes), low_bits_mins<Format>(mins, bsums), wd, wdmin, x[r].d[b]);
        }
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) args.y[(row + r) * n_out + col + c] = acc[c][r];
  }
};

// Below the type's panel threshold (from there the AVX2 compute_* decode panels, as here bit for bit).
template <typename Tile>
void compute_512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const int64_t n_in = args.weight->shape[1];
  const Tile tile{args, n_in, args.weight->shape[0], n_in / kQK_K, args.weight->row_bytes()};
  if (row_end - row_begin == 1) {
    for_each_tile<4, 1>(tile, row_begin, row_end, col_begin, col_end);
  } else {
    for_each_tile<4, 2>(tile, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace

void compute_q4_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                         int64_t col_end) {
  if (row_end - row_begin >= kQ4KPanelRows) return compute_q4_k(args, row_begin, row_end, col_begin, col_end);
  compute_512<TileQ45K512<false>>(args, row_begin, row_end, col_begin, col_end);
}

void compute_q5_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                         int64_t col_end) {
  if (row_end - row_begin >= kQ5KPanelRows) return compute_q5_k(args, row_begin, row_end, col_begin, col_end);
  compute_512<TileQ45K512<true>>(args, row_begin, row_end, col_begin, col_end);
}

void compute_q2_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                         int64_t col_end) {
  if (row_end - row_begin >= kLowBitsPanelRows) return compute_q2_k(args, row_begin, row_end, col_begin, col_end);
  compute_512<TileLowBitsK512<LowBitsQ2K>>(args, row_begin, row_end, col_begin, col_end);
}

void compute_q3_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                         int64_t col_end) {
  if (row_end - row_begin >= kLowBitsPanelRows) return compute_q3_k(args, row_begin, row_end, col_begin, col_end);
  compute_512<TileLowBitsK512<LowBitsQ3K>>(args, row_begin, row_end, col_begin, col_end);
}

}  // namespace so::cpu::detail::avx2
