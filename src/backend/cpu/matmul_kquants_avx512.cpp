// Q4_K and Q5_K tiles with AVX-512 BW and VNNI below the panel thresholds (one sequence's decode,
// a batch's experts): fewer instructions per block than the AVX2 tile (Qwen3-MoE Q4_K on 2 Zen 4
// cores, both prefetching: one sequence +6-8%, 32 rows +5-10%).
//
// note: a zmm holds two groups of 32 (sub-blocks 4h + n and 4h + 2 + n: the low or high nibbles
// of 64 weight bytes), so one maddubs and one vpdpwssd do what maddubs, madd and add do per
// group in AVX2. The halves' int32 lanes are added at the end of each block, which gives
// exactly the AVX2 tile's 8 lanes (integer sums, any order), and from there every float
// operation is the AVX2 tile's: the results are bit-identical at any tile size and ISA.
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
    __m256 acc[kCols][kRows];
    zero(acc);

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
          acc[c][r] = add_q45k_block(acc[c][r], lanes, mins, sums32[r], x[r].d[b], wd, wdmin);
        }
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) args.y[(row + r) * n_out + col + c] = hsum(acc[c][r]);
  }
};

// Below its panel threshold (from there compute_q4_k / compute_q5_k decode panels, as here bit for bit).
template <bool kFifthBit>
void compute_512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const int64_t n_in = args.weight->shape[1];
  const TileQ45K512<kFifthBit> tile{args, n_in, args.weight->shape[0], n_in / kQK_K, args.weight->row_bytes()};
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
  compute_512<false>(args, row_begin, row_end, col_begin, col_end);
}

void compute_q5_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                         int64_t col_end) {
  if (row_end - row_begin >= kQ5KPanelRows) return compute_q5_k(args, row_begin, row_end, col_begin, col_end);
  compute_512<true>(args, row_begin, row_end, col_begin, col_end);
}

}  // namespace so::cpu::detail::avx2
