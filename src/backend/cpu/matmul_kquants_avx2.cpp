// AVX2/FMA matmul for the K-quant weights (Q4_K, Q5_K, Q6_K, Q2_K, Q3_K) against Q8_K activations.
//
// Within a super-block of 256 the sub-block scales are small integers, so a super-block
// accumulates exactly in 8 int32 lanes; their total (and the mins' total) then takes the
// float steps of add_kquant_block, the same per output for every tile size and ISA: batch
// invariance, and the bits of llama.cpp's prompt-path matmul.
#include <type_traits>
#include <vector>

#include "backend/cpu/matmul_kquants_avx2.h"
#include "tensor/blocks.h"

namespace so::cpu::detail::avx2 {
namespace {

// vpshufb masks that copy int16 word k of each 128-bit lane to all its words.
struct WordBroadcast {
  alignas(32) uint8_t bytes[8][32];
  constexpr WordBroadcast() : bytes() {
    for (int k = 0; k < 8; ++k)
      for (int i = 0; i < 32; ++i) bytes[k][i] = uint8_t(2 * k + (i & 1));
  }
};
constexpr WordBroadcast kWordBroadcastTable;
constexpr const uint8_t (&kWordBroadcast)[8][32] = kWordBroadcastTable.bytes;

// 8 int32 lanes of scale * (u . s) over 32 byte products; u unsigned (<= 63), s signed.
inline __m256i scaled_dot(__m256i u, __m256i s, __m256i scale16) {
  return _mm256_madd_epi16(scale16, _mm256_maddubs_epi16(u, s));
}

// One K-quant block of one weight row as a tile consumes it: the 8 groups of 32 values (unsigned)
// with their int16 scale vectors, the vector the activation sums meet (Q4_K/Q5_K's mins in the
// low half, Q2_K's mins, Q3_K's scales), d and dmin. Decoding a block costs about what its dot
// products with a few rows do, so at many rows panels of weight rows are decoded once
// (compute_k) and every row tile reads them: the same integer lanes and float operations per
// output as the tiles that decode as they go.
struct DecodedBlock {
  __m256i u[8];
  __m256i scale[8];
  __m256i pre;
  float d, dmin;
};

// sumi[r] += the decoded block's 8 scaled group dots with block b of activation row r.
template <int kRows>
inline void add_group_dots(const DecodedBlock& w, const ActivationRow (&x)[kRows], int64_t b, __m256i (&sumi)[kRows]) {
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      sumi[r] = _mm256_add_epi32(sumi[r], scaled_dot(w.u[g], load(x[r].qs + b * 256 + 32 * g), w.scale[g]));
    }
  }
}

// One weight row, already decoded (`decoded`: its blocks), against kRows activation rows, with the
// tile's hooks for where its integer sums start and its min term: per output, the same integer
// lanes and float operations as the tile's own run().
template <int kRows, typename Tile>
void run_decoded(const Tile& tile, const DecodedBlock* decoded, const ActivationRow (&x)[kRows], int64_t col,
                 int64_t row) {
  float acc[kRows] = {};
  for (int64_t b = 0; b < tile.n_blocks; ++b) {
    const DecodedBlock& w = decoded[b];
    __m256i sumi[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) sumi[r] = Tile::start(w, load(x[r].bsums + b * 16));
    add_group_dots(w, x, b, sumi);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const int32_t mins = Tile::min_total(w, load(x[r].bsums + b * 16));
      acc[r] = add_kquant_block(acc[r], total(sumi[r]), mins, w.d, w.dmin, x[r].d[b]);
    }
  }
  for (int r = 0; r < kRows; ++r) tile.args.y[(row + r) * tile.n_out + col] = acc[r];
}

// Rows [row, row + kRows) against a panel of n_cols decoded weight rows from `col`: the
// activation rows stay in L1 while the panel streams from L2.
template <int kRows, typename Tile>
void run_panel(const Tile& tile, const DecodedBlock* panel, int64_t col, int n_cols, int64_t row) {
  ActivationRow x[kRows];
  tile_activation_rows(tile.args, row, tile.n_in, q8_k_row, x);
  for (int c = 0; c < n_cols; ++c) run_decoded<kRows>(tile, panel + c * tile.n_blocks, x, col + c, row);
}

// Q4_K, and with kFifthBit Q5_K (the same layout plus qh: bit 2j of qh[l] tops element 64j + l,
// bit 2j + 1 element 64j + 32 + l).
template <bool kFifthBit>
struct TileQ45K {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  // run_decoded's hooks: sums start at 0; the mins (pre's low half) meet the sums of 32.
  static __m256i start(const DecodedBlock&, __m256i) { return _mm256_setzero_si256(); }
  static int32_t min_total(const DecodedBlock& w, __m256i bsums) {
    const __m128i sums32 = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    return total(_mm_madd_epi16(_mm256_castsi256_si128(w.pre), sums32));
  }
  static constexpr int64_t kPanelRows = kFifthBit ? kQ5KPanelRows : kQ4KPanelRows;
  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    const Block* w[kCols];
    tile_weight_rows(args, col, weight_row_bytes, w);
    ActivationRow x[kRows];
    tile_activation_rows(args, row, n_in, q8_k_row, x);
    float acc[kCols][kRows] = {};

    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < n_blocks; ++b) {
      __m128i sums32[kRows];
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) sums32[r] = sums_of_32(x[r], b);
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        prefetch_ahead(w[c] + b, kCols * weight_row_bytes);
        // note: a sub-block's scale is broadcast from the scale words by a byte shuffle in registers (a store
        // and eight broadcast loads per block cost more than the dot products at one row).
        const __m256i scales_mins = q4_k_scales_mins(w[c][b].scales);
        const __m256i scales = _mm256_permute2x128_si256(scales_mins, scales_mins, 0x00);
        const __m128i mins = _mm256_extracti128_si256(scales_mins, 1);
        __m256i sumi[kRows];
        for (int r = 0; r < kRows; ++r) sumi[r] = _mm256_setzero_si256();
        [[maybe_unused]] __m256i fifth_bits;
        if constexpr (kFifthBit) fifth_bits = load(w[c][b].qh);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {  // sub-blocks 2j (low nibbles) and 2j + 1 (high nibbles)
          const __m256i bits = load(w[c][b].qs + 32 * j);
          __m256i low = _mm256_and_si256(bits, m4);
          __m256i high = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
          if constexpr (kFifthBit) {
            // note: 16-bit shifts keep bit k of each byte in its bit 0 (k < 8); the mask drops the rest.
            const __m256i one = _mm256_set1_epi8(1);
            low = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(fifth_bits, 2 * j), one), 4));
            high = _mm256_or_si256(
                high, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(fifth_bits, 2 * j + 1), one), 4));
          }
          const __m256i scale_low = _mm256_shuffle_epi8(scales, load(kWordBroadcast[2 * j]));
          const __m256i scale_high = _mm256_shuffle_epi8(scales, load(kWordBroadcast[2 * j + 1]));
#pragma GCC unroll 8
          for (int r = 0; r < kRows; ++r) {
            const int8_t* q8 = x[r].qs + b * 256 + 64 * j;
            sumi[r] = _mm256_add_epi32(sumi[r], scaled_dot(low, load(q8), scale_low));
            sumi[r] = _mm256_add_epi32(sumi[r], scaled_dot(high, load(q8 + 32), scale_high));
          }
        }
        const float wd = f16_to_f32(w[c][b].d), wdmin = f16_to_f32(w[c][b].dmin);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          acc[c][r] = add_kquant_block(acc[c][r], total(sumi[r]), total(_mm_madd_epi16(mins, sums32[r])), wd, wdmin, x[r].d[b]);
        }
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) args.y[(row + r) * n_out + col + c] = acc[c][r];
  }

  static void decode(const Block& block, DecodedBlock& out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i scales_mins = q4_k_scales_mins(block.scales);
    const __m256i scales = _mm256_permute2x128_si256(scales_mins, scales_mins, 0x00);
    out.pre = _mm256_permute2x128_si256(scales_mins, scales_mins, 0x11);  // the mins, in the low half
    for (int j = 0; j < 4; ++j) {
      const __m256i bits = load(block.qs + 32 * j);
      __m256i low = _mm256_and_si256(bits, m4);
      __m256i high = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      if constexpr (kFifthBit) {
        const __m256i fifth_bits = load(block.qh);
        low = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(fifth_bits, 2 * j), one), 4));
        high = _mm256_or_si256(high,
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(fifth_bits, 2 * j + 1), one), 4));
      }
      out.u[2 * j] = low;
      out.u[2 * j + 1] = high;
      out.scale[2 * j] = _mm256_shuffle_epi8(scales, load(kWordBroadcast[2 * j]));
      out.scale[2 * j + 1] = _mm256_shuffle_epi8(scales, load(kWordBroadcast[2 * j + 1]));
    }
    out.d = f16_to_f32(block.d);
    out.dmin = f16_to_f32(block.dmin);
  }

};

// vpshufb masks: word 2g % 8 of each 128-bit lane to the low lane's words and word (2g + 1) % 8
// to the high lane's, for a vector whose lanes both hold words 8 (g / 4) .. 8 (g / 4) + 7.
struct PairBroadcast {
  alignas(32) uint8_t bytes[4][32];
  constexpr PairBroadcast() : bytes() {
    for (int g = 0; g < 4; ++g)
      for (int i = 0; i < 32; ++i) bytes[g][i] = uint8_t(2 * (2 * g + (i >= 16)) + (i & 1));
  }
};
constexpr PairBroadcast kPairBroadcastTable;

template <typename Format>
struct TileLowBitsK {
  using Block = typename Format::Block;
  // run_decoded's hooks: Q2_K's mins meet the sums of 16; Q3_K's sums start at -4 * scales . sums.
  static __m256i start(const DecodedBlock& w, __m256i bsums) { return low_bits_start<Format>(w.pre, bsums); }
  static int32_t min_total(const DecodedBlock& w, __m256i bsums) { return low_bits_mins<Format>(w.pre, bsums); }
  static constexpr int64_t kPanelRows = kLowBitsPanelRows;
  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  static void decode(const Block& block, DecodedBlock& out) {
    __m256i scales, mins;
    Format::unpack(block, &scales, &mins);
    out.pre = Format::kMins ? mins : scales;
    const __m256i scales_0_7 = _mm256_permute2x128_si256(scales, scales, 0x00);
    const __m256i scales_8_15 = _mm256_permute2x128_si256(scales, scales, 0x11);
    for (int g = 0; g < 8; ++g) {
      out.u[g] = Format::values(block, g);
      out.scale[g] = _mm256_shuffle_epi8(g < 4 ? scales_0_7 : scales_8_15, load(kPairBroadcastTable.bytes[g % 4]));
    }
    out.d = Format::d(block);
    out.dmin = Format::dmin(block);
  }



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
        // note: Q3_K's +4: minus 4 * sum_sub scale_sub * bsum_sub; Q2_K's mins: their own total.
        __m256i sumi[kRows];
        int32_t min_totals[kRows];
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m256i bsums = load(x[r].bsums + b * 16);
          sumi[r] = low_bits_start<Format>(scales, bsums);
          min_totals[r] = low_bits_mins<Format>(mins, bsums);
        }
        const __m256i scales_0_7 = _mm256_permute2x128_si256(scales, scales, 0x00);
        const __m256i scales_8_15 = _mm256_permute2x128_si256(scales, scales, 0x11);
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
          const __m256i u = Format::values(w[c][b], g);
          const __m256i scale = _mm256_shuffle_epi8(g < 4 ? scales_0_7 : scales_8_15, load(kPairBroadcastTable.bytes[g % 4]));
#pragma GCC unroll 8
          for (int r = 0; r < kRows; ++r) {
            sumi[r] = _mm256_add_epi32(sumi[r], scaled_dot(u, load(x[r].qs + b * 256 + 32 * g), scale));
          }
        }
        const float wd = Format::d(w[c][b]);
        [[maybe_unused]] const float wdmin = Format::dmin(w[c][b]);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          acc[c][r] = add_kquant_block(acc[c][r], total(sumi[r]), min_totals[r], wd, wdmin, x[r].d[b]);
        }
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) args.y[(row + r) * n_out + col + c] = acc[c][r];
  }
};

// Scales of sub-blocks 2k (low 128-bit lane) and 2k + 1 (high lane) as int16.
inline __m256i q6_k_scale_pair(__m128i scales8, int k) {
  const int64_t low = 0x0101010101010101LL * (2 * k), high = 0x0101010101010101LL * (2 * k + 1);
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, _mm_set_epi64x(high, low)));
}

struct TileQ6K {
  using Block = BlockQ6_K;
  // run_decoded's hooks: sums start at -32 * scales . sums (the values are q + 32); no mins.
  static __m256i start(const DecodedBlock& w, __m256i bsums) {
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(w.pre, bsums), 5));
  }
  static int32_t min_total(const DecodedBlock&, __m256i) { return 0; }
  static constexpr int64_t kPanelRows = 32;  // kernels_bench: -5% at 16 rows, +4% at 32, +12% at 512
  const MatmulArgs& args;
  int64_t n_in, n_out, n_blocks, weight_row_bytes;

  // The values q + 32 (unsigned 6 bits) of group k = 4 half + g, elements 32k..32k + 31.
  static __m256i values(const Block& block, int half, int g) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    const __m256i ql = load(block.ql + 64 * half + 32 * (g & 1));
    const __m256i qh = load(block.qh + 32 * half);
    const __m256i low4 = g < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
    return _mm256_or_si256(low4, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), m2), 4));
  }

  static void decode(const Block& block, DecodedBlock& out) {
    const __m128i scales8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.scales));
    out.pre = _mm256_cvtepi8_epi16(scales8);
    for (int k = 0; k < 8; ++k) {
      out.u[k] = values(block, k / 4, k % 4);
      out.scale[k] = q6_k_scale_pair(scales8, k);
    }
    out.d = f16_to_f32(block.d);
    out.dmin = 0.0f;
  }


  template <int kCols, int kRows>
  void run(int64_t col, int64_t row) const {
    const BlockQ6_K* w[kCols];
    tile_weight_rows(args, col, weight_row_bytes, w);
    ActivationRow x[kRows];
    tile_activation_rows(args, row, n_in, q8_k_row, x);
    float acc[kCols][kRows] = {};

    for (int64_t b = 0; b < n_blocks; ++b) {
      __m256i sumi[kCols][kRows];
      // note: the weights' 6-bit values are unsigned (q + 32); the -32 is applied through the
      // activation's bsums: sum_sub scale_sub * 32 * bsum_sub, subtracted once per block.
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        prefetch_ahead(w[c] + b, kCols * weight_row_bytes);
        const __m256i scales16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[c][b].scales)));
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const __m256i offset = _mm256_madd_epi16(scales16, load(x[r].bsums + b * 16));
          sumi[c][r] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
        }
      }
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {  // elements 128 * half + 32 * g, sub-blocks 2k, 2k + 1
          const int k = 4 * half + g;
#pragma GCC unroll 8
          for (int c = 0; c < kCols; ++c) {
            const __m256i q6 = values(w[c][b], half, g);
            const __m256i scale = q6_k_scale_pair(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[c][b].scales)), k);
#pragma GCC unroll 8
            for (int r = 0; r < kRows; ++r) {
              sumi[c][r] = _mm256_add_epi32(sumi[c][r], scaled_dot(q6, load(x[r].qs + b * 256 + 32 * k), scale));
            }
          }
        }
      }
#pragma GCC unroll 8
      for (int c = 0; c < kCols; ++c) {
        const float wd = f16_to_f32(w[c][b].d);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) acc[c][r] = add_kquant_block(acc[c][r], total(sumi[c][r]), 0, wd, 0.0f, x[r].d[b]);
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) args.y[(row + r) * n_out + col + c] = acc[c][r];
  }
};

// kCols x kRows: the tile for several rows, picked by measurement (the costlier unpacking of
// Q6_K, Q5_K, Q3_K and Q2_K pays off over more activation rows: Q3_K 1.5x at 2 x 4 over 4 x 2).
// Tiles that decode a block into a DecodedBlock take panels of kPanelCols weight rows from their
// kPanelRows activation rows up (kernels_bench at 512 rows: Q3_K 1.5x, Q5_K 1.2x, Q2_K, Q4_K, Q6_K 1.1x).
template <typename Tile>
concept DecodesBlocks = requires(const typename Tile::Block& block, DecodedBlock& out) { Tile::decode(block, out); };

template <typename Tile>
void compute_panels(const Tile& tile, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  constexpr int64_t kPanelCols = 8;
  thread_local std::vector<DecodedBlock> panel;
  panel.resize(size_t(kPanelCols * tile.n_blocks));
  for (int64_t col = col_begin; col < col_end; col += kPanelCols) {
    const int n_cols = int(std::min(kPanelCols, col_end - col));
    for (int c = 0; c < n_cols; ++c) {
      const auto* blocks = reinterpret_cast<const typename Tile::Block*>(tile.args.weight->row(col + c));
      for (int64_t b = 0; b < tile.n_blocks; ++b) Tile::decode(blocks[b], panel[size_t(c * tile.n_blocks + b)]);
    }
    int64_t row = row_begin;
    for (; row + 4 <= row_end; row += 4) run_panel<4>(tile, panel.data(), col, n_cols, row);
    switch (row_end - row) {
      case 3: run_panel<3>(tile, panel.data(), col, n_cols, row); break;
      case 2: run_panel<2>(tile, panel.data(), col, n_cols, row); break;
      case 1: run_panel<1>(tile, panel.data(), col, n_cols, row); break;
      default: break;
    }
  }
}

template <typename Tile, int kCols, int kRows>
void compute_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const int64_t n_in = args.weight->shape[1];
  const Tile tile{args, n_in, args.weight->shape[0], n_in / kQK_K, args.weight->row_bytes()};
  if (row_end - row_begin == 1) {
    for_each_tile<4, 1>(tile, row_begin, row_end, col_begin, col_end);
  } else if constexpr (DecodesBlocks<Tile>) {
    if (row_end - row_begin >= Tile::kPanelRows) return compute_panels(tile, row_begin, row_end, col_begin, col_end);
    for_each_tile<kCols, kRows>(tile, row_begin, row_end, col_begin, col_end);
  } else {
    for_each_tile<kCols, kRows>(tile, row_begin, row_end, col_begin, col_end);
  }
}

}  // namespace

void compute_q4_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_k<TileQ45K<false>, 4, 2>(args, row_begin, row_end, col_begin, col_end);
}
void compute_q5_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_k<TileQ45K<true>, 2, 4>(args, row_begin, row_end, col_begin, col_end);
}
void compute_q2_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_k<TileLowBitsK<LowBitsQ2K>, 2, 4>(args, row_begin, row_end, col_begin, col_end);
}
void compute_q3_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_k<TileLowBitsK<LowBitsQ3K>, 2, 4>(args, row_begin, row_end, col_begin, col_end);
}
void compute_q6_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_k<TileQ6K, 2, 4>(args, row_begin, row_end, col_begin, col_end);
}

}  // namespace so::cpu::detail::avx2
