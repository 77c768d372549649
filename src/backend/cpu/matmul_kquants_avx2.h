// Internal to backend/cpu: what the AVX2 K-quant kernels (matmul_kquants_avx2.cpp) share with
// their AVX-512 variants (matmul_kquants_avx512.cpp). Include only from *_avx2/_avx512 files.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/matmul_avx2.h"
#include "backend/cpu/matmul_internal.h"
#include "tensor/blocks.h"

namespace so::cpu::detail::avx2 {

// Q4_K, Q5_K, Q2_K and Q3_K against packed Q8_K rows with AVX-512 BW/VNNI below their panel
// thresholds (one sequence's decode, a batch's experts); bit-identical to compute_q4_k etc., which
// they call from there.
void compute_q4_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q5_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q2_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q3_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);

// From these many activation rows on, compute_q4_k / compute_q5_k decode panels of weight rows
// once for all row tiles (Q4_K's nibbles decode cheaply: its panels pay off later; kernels_bench:
// even at 32 rows, +10% at 512).
constexpr int64_t kQ4KPanelRows = 64, kQ5KPanelRows = 16, kLowBitsPanelRows = 16;

namespace {  // internal linkage: compiled for two ISAs (see matmul_avx2.h)

// The 8 six-bit scales (words 0..7 of the result) and mins (words 8..15) of a Q4_K block.
inline __m256i q4_k_scales_mins(const uint8_t* packed) {
  // note: sub-blocks 4..7 keep their low 4 bits in bytes 8..11 (scale low nibble, min high
  // nibble) and their top 2 bits in the top of bytes 0..3 (scales) and 4..7 (mins).
  uint32_t words[3];
  __builtin_memcpy(words, packed, 12);
  const uint32_t six_bits = 0x3f3f3f3f, nibble = 0x0f0f0f0f, two_bits = 0x03030303;
  const uint32_t scales_0_3 = words[0] & six_bits;
  const uint32_t mins_0_3 = words[1] & six_bits;
  const uint32_t scales_4_7 = (words[2] & nibble) | (((words[0] >> 6) & two_bits) << 4);
  const uint32_t mins_4_7 = ((words[2] >> 4) & nibble) | (((words[1] >> 6) & two_bits) << 4);
  return _mm256_cvtepu8_epi16(_mm_setr_epi32(scales_0_3, scales_4_7, mins_0_3, mins_4_7));
}

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Q2_K and Q3_K: 16 sub-blocks of 16. Group g (0..7) of 32 elements, 128h + 32j with g = 4h + j,
// is bits 2j of qs[32h..32h + 31] (and for Q3_K bit g of hmask[0..31] as the third bit); its
// low 16 bytes are sub-block 2g, its high 16 sub-block 2g + 1, so one int16 scale vector with
// a scale per 128-bit lane serves the group. The weights meet maddubs unsigned (Q3_K: q + 4,
// the 4 taken back out through the activation's 16-value sums).
struct LowBitsQ2K {
  using Block = BlockQ2_K;
  static constexpr bool kMins = true;
  // Scales (low nibbles) and mins (high nibbles) of the 16 sub-blocks as int16.
  static void unpack(const Block& block, __m256i* scales, __m256i* mins) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.scales));
    *scales = _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0F)));
    *mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
  }
  static __m256i values(const Block& block, int g) {
    const __m256i packed = load(block.qs + 32 * (g / 4));
    return _mm256_and_si256(_mm256_srli_epi16(packed, 2 * (g % 4)), _mm256_set1_epi8(3));
  }
  static float d(const Block& block) { return f16_to_f32(block.d); }
  static float dmin(const Block& block) { return f16_to_f32(block.dmin); }
};

struct LowBitsQ3K {
  using Block = BlockQ3_K;
  static constexpr bool kMins = false;
  // The 16 signed 6-bit scales as int16 (mins: unused).
  // note: as q3_k_scales: scale j has its low 4 bits in byte j % 8 (low nibble for j < 8, high
  // for j >= 8) and its top 2 bits at bits 2 (j / 4) of byte 8 + j % 4.
  static void unpack(const Block& block, __m256i* scales, __m256i* /*mins*/) {
    // note: the 16 block bytes that end with the scales (4 of qs, then the 12), shifted down: a stack
    // copy of the 12 made every block wait on a failed store forwarding (Qwen3-MoE Q3_K, one
    // sequence: 83 -> 140 tokens/s with the AVX2 tile).
    static_assert(offsetof(Block, scales) >= 4);
    const auto* scales_end = reinterpret_cast<const uint8_t*>(&block) + offsetof(Block, scales) + 12;
    const __m128i packed = _mm_srli_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales_end - 16)), 4);
    const __m128i nibble = _mm_set1_epi8(0x0F);
    const __m128i low = _mm_unpacklo_epi64(_mm_and_si128(packed, nibble), _mm_and_si128(_mm_srli_epi16(packed, 4), nibble));
    const __m128i tops = _mm_shuffle_epi8(packed, _mm_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11));
    const __m128i high = _mm_and_si128(_mm_srlv_epi32(tops, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
    const __m128i values = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
    *scales = _mm256_cvtepi8_epi16(values);
  }
  static __m256i values(const Block& block, int g) {
    const __m256i packed = load(block.qs + 32 * (g / 4));
    const __m256i low = _mm256_and_si256(_mm256_srli_epi16(packed, 2 * (g % 4)), _mm256_set1_epi8(3));
    // note: 16-bit shifts keep bit g of each byte in its bit 0 (g < 8); the mask drops the rest.
    const __m256i third = _mm256_and_si256(_mm256_srli_epi16(load(block.hmask), g), _mm256_set1_epi8(1));
    return _mm256_or_si256(low, _mm256_slli_epi16(third, 2));
  }
  static float d(const Block& block) { return f16_to_f32(block.d); }
  static float dmin(const Block&) { return 0.0f; }
};

// The sums of each 32 activations of block b (its 16 bsums of 16, paired).
inline __m128i sums_of_32(const ActivationRow& x, int64_t b) {
  const __m256i bsums = load(x.bsums + b * 16);
  return _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
}

// Sums of int32 lanes, exact.
inline int32_t total(__m128i lanes) {
  const __m128i pairs = _mm_add_epi32(lanes, _mm_unpackhi_epi64(lanes, lanes));
  return _mm_cvtsi128_si32(_mm_add_epi32(pairs, _mm_shuffle_epi32(pairs, 1)));
}
inline int32_t total(__m256i lanes) {
  return total(_mm_add_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1)));
}

// A Q2_K/Q3_K block's 8 integer sum lanes start from (Q3_K: -4 scales . sums of 16, the values' +4
// taken back out; Q2_K: 0).
template <typename Format>
inline __m256i low_bits_start(__m256i scales, __m256i bsums) {
  if constexpr (Format::kMins) return _mm256_setzero_si256();
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(scales, bsums), 2));
}

// A Q2_K block's mins . sums of 16 (Q3_K: none).
template <typename Format>
inline int32_t low_bits_mins(__m256i mins, __m256i bsums) {
  if constexpr (Format::kMins) return total(_mm256_madd_epi16(mins, bsums));
  return 0;
}

}  // namespace
}  // namespace so::cpu::detail::avx2
