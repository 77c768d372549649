// Internal to backend/cpu: what the AVX2 K-quant kernels (matmul_kquants_avx2.cpp) share with
// their AVX-512 variants (matmul_kquants_avx512.cpp). Include only from *_avx2/_avx512 files.
#pragma once

#include "backend/cpu/matmul_avx2.h"

namespace so::cpu::detail::avx2 {

// Q4_K and Q5_K against packed Q8_K rows with AVX-512 BW/VNNI below their panel thresholds (one
// sequence's decode, a batch's experts); bit-identical to compute_q4_k / compute_q5_k, which they
// call from there.
void compute_q4_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);
void compute_q5_k_avx512(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end);

// From these many activation rows on, compute_q4_k / compute_q5_k decode panels of weight rows
// once for all row tiles (Q4_K's nibbles decode cheaply: its panels pay off later; kernels_bench:
// even at 32 rows, +10% at 512).
constexpr int64_t kQ4KPanelRows = 64, kQ5KPanelRows = 16;

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

// The sums of each 32 activations of block b (its 16 bsums of 16, paired).
inline __m128i sums_of_32(const ActivationRow& x, int64_t b) {
  const __m256i bsums = load(x.bsums + b * 16);
  return _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
}

// acc plus a Q4_K/Q5_K block's float terms, as every tile adds them: d_x d_w f32(its 8 integer
// lanes), then -d_x dmin_w (mins . sums of 32) in 4 lanes.
inline __m256 add_q45k_block(__m256 acc, __m256i lanes, __m128i mins, __m128i sums32, float xd, float wd,
                             float wdmin) {
  const __m256 min_lanes = _mm256_zextps128_ps256(_mm_cvtepi32_ps(_mm_madd_epi16(mins, sums32)));
  acc = _mm256_fmadd_ps(_mm256_set1_ps(xd * wd), _mm256_cvtepi32_ps(lanes), acc);
  return _mm256_fmadd_ps(_mm256_set1_ps(-(xd * wdmin)), min_lanes, acc);
}

}  // namespace
}  // namespace so::cpu::detail::avx2
