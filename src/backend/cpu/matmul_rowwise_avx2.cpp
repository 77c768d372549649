// Q5_0 and MXFP4 weights against Q8_0 activations, Q5_K against Q8_K (reference block
// layouts), one output at a time. note: each block's integer dot products are exact and are
// summed as the scalar reference does, so the results equal dot_q5_0_q8_0 / dot_mxfp4_q8_0 /
// dot_q5_k_q8_k bit for bit (and never depend on how the work is split); so do Q2_K and Q3_K
// against dot_q2_k_q8_k / dot_q3_k_q8_k.
#include <cstring>

#include "backend/cpu/matmul_avx2.h"
#include "backend/cpu/matmul_internal.h"
#include "tensor/fp16.h"

namespace so::cpu::detail::avx2 {
namespace {

// A block's 16 bytes of nibbles as 32 bytes in element order (low nibbles, then high).
inline __m256i nibbles_in_order(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0F));
}

struct Q5_0Block {
  using Block = BlockQ5_0;
  // The block's 32 values q - 16 as int8.
  static __m256i values(const Block& block) {
    uint32_t qh;
    std::memcpy(&qh, block.qh, sizeof(qh));
    // Byte i takes byte i / 8 of qh and keeps bit i % 8: set where element i has its fifth bit.
    const __m256i byte_of_bit = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                                 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
    const __m256i spread = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(qh)), byte_of_bit), bit);
    const __m256i has_bit = _mm256_cmpeq_epi8(spread, bit);
    // q - 16 = nibble - 16 without the bit (nibble | 0xF0 as int8), nibble with it.
    return _mm256_or_si256(nibbles_in_order(block.qs), _mm256_andnot_si256(has_bit, _mm256_set1_epi8(int8_t(0xF0))));
  }
  static float scale(const Block& block) { return fp16_to_fp32(block.d); }
};

struct Mxfp4Block {
  using Block = BlockMXFP4;
  static __m256i values(const Block& block) {
    const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values));
    return _mm256_shuffle_epi8(_mm256_set_m128i(table, table), nibbles_in_order(block.qs));
  }
  static float scale(const Block& block) { return mxfp4_half_scale(block.e); }
};

// Sum of the 8 int32 lanes.
inline int hsum_int(__m256i v) {
  __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  sum = _mm_add_epi32(sum, _mm_unpackhi_epi64(sum, sum));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 1));
  return _mm_cvtsi128_si32(sum);
}

template <typename Format>
inline int block_dot(const typename Format::Block& w, const BlockQ8_0& x) {
  const __m256i q = Format::values(w);
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  // maddubs takes unsigned x signed: move q's sign onto a.
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q));
  return hsum_int(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// sum_l q[l] * a[l] over 32 values, q unsigned (0..31), a signed.
inline int dot_unsigned(__m256i q, const int8_t* a) {
  const __m256i pairs = _mm256_maddubs_epi16(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
  return hsum_int(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

float q5_k_row_dot(const BlockQ5_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m256i high_bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh));
    const uint8_t* q = w[b].qs;
    const int8_t* a = x[b].qs;
    int isum = 0, imin = 0;
    for (int sub = 0; sub < 8; sub += 2, q += 32, a += 64) {
      uint8_t scale_low, min_low, scale_high, min_high;
      q4_k_scale_min(sub, w[b].scales, &scale_low, &min_low);
      q4_k_scale_min(sub + 1, w[b].scales, &scale_high, &min_high);
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
      // note: 16-bit shifts keep bit `sub` of each byte in its bit 0 (sub < 8); the mask drops the rest.
      const __m256i fifth_low = _mm256_and_si256(_mm256_srli_epi16(high_bits, sub), one);
      const __m256i fifth_high = _mm256_and_si256(_mm256_srli_epi16(high_bits, sub + 1), one);
      const __m256i q_low = _mm256_or_si256(_mm256_and_si256(packed, low_nibbles), _mm256_slli_epi16(fifth_low, 4));
      const __m256i q_high = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles),
                                             _mm256_slli_epi16(fifth_high, 4));
      isum += scale_low * dot_unsigned(q_low, a) + scale_high * dot_unsigned(q_high, a + 32);
      imin += min_low * (x[b].bsums[2 * sub] + x[b].bsums[2 * sub + 1]);
      imin += min_high * (x[b].bsums[2 * sub + 2] + x[b].bsums[2 * sub + 3]);
    }
    const float d = x[b].d * fp16_to_fp32(w[b].d);
    const float dmin = x[b].d * fp16_to_fp32(w[b].dmin);
    sum += d * static_cast<float>(isum) - dmin * static_cast<float>(imin);
  }
  return sum;
}

// sum over 32 values of q * a, each 16-value half times its own scale: q unsigned (< 128),
// the scales int16 (the low half's, then the high half's). Exact in int32.
inline __m256i scaled_pair_dot(__m256i q, const int8_t* a, int scale_low, int scale_high) {
  const __m256i pairs = _mm256_maddubs_epi16(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
  const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(int16_t(scale_high)), _mm_set1_epi16(int16_t(scale_low)));
  return _mm256_madd_epi16(pairs, scales);
}

// Q2_K and Q3_K: the integer sums of dot_q2_k_q8_k / dot_q3_k_q8_k (exact, so the results are
// the reference's bit for bit). Each 32 bytes of qs hold 4 groups of 32 values at bits 2j.
float q2_k_row_dot(const BlockQ2_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  const __m256i three = _mm256_set1_epi8(3);
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m256i acc = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * half));
      for (int j = 0; j < 4; ++j) {
        const int sub = half * 8 + 2 * j;
        const __m256i q = _mm256_and_si256(_mm256_srli_epi16(packed, 2 * j), three);
        acc = _mm256_add_epi32(acc, scaled_pair_dot(q, x[b].qs + 16 * sub, w[b].scales[sub] & 0xF,
                                                    w[b].scales[sub + 1] & 0xF));
      }
    }
    int imin = 0;
    for (int sub = 0; sub < 16; ++sub) imin += (w[b].scales[sub] >> 4) * x[b].bsums[sub];
    const float d = x[b].d * fp16_to_fp32(w[b].d), dmin = x[b].d * fp16_to_fp32(w[b].dmin);
    sum += d * static_cast<float>(hsum_int(acc)) - dmin * static_cast<float>(imin);
  }
  return sum;
}

// q + 4 (0..7: the low bits and the third bit) meets the activations; the 4 comes back out
// through the activation's 16-value sums.
float q3_k_row_dot(const BlockQ3_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int scales[16];
    q3_k_scales(w[b].scales, scales);
    const __m256i high_bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].hmask));
    __m256i acc = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * half));
      for (int j = 0; j < 4; ++j) {
        const int sub = half * 8 + 2 * j;
        // note: 16-bit shifts keep bit k of each byte in its bit 0 (k < 8); the mask drops the rest.
        const __m256i third = _mm256_and_si256(_mm256_srli_epi16(high_bits, half * 4 + j), one);
        const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 2 * j), three),
                                          _mm256_slli_epi16(third, 2));
        acc = _mm256_add_epi32(acc, scaled_pair_dot(q, x[b].qs + 16 * sub, scales[sub], scales[sub + 1]));
      }
    }
    int offset = 0;
    for (int sub = 0; sub < 16; ++sub) offset += scales[sub] * x[b].bsums[sub];
    sum += (x[b].d * fp16_to_fp32(w[b].d)) * static_cast<float>(hsum_int(acc) - 4 * offset);
  }
  return sum;
}

template <typename Format>
void compute_rowwise(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  using Block = typename Format::Block;
  const TensorView& weight = *args.weight;
  const int64_t n_out = weight.shape[0], n_blocks = weight.shape[1] / 32;
  const int64_t row_bytes = weight.row_bytes();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const auto* x = reinterpret_cast<const BlockQ8_0*>(args.activations + r * args.activation_stride);
    for (int64_t c = col_begin; c < col_end; ++c) {
      const auto* w = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(weight.data) + c * row_bytes);
      float sum = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        sum += (Format::scale(w[b]) * fp16_to_fp32(x[b].d)) * static_cast<float>(block_dot<Format>(w[b], x[b]));
      }
      args.y[r * n_out + c] = sum;
    }
  }
}

}  // namespace

void compute_q5_0(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_rowwise<Q5_0Block>(args, row_begin, row_end, col_begin, col_end);
}

void compute_mxfp4(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_rowwise<Mxfp4Block>(args, row_begin, row_end, col_begin, col_end);
}

void compute_q5_k(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  const TensorView& weight = *args.weight;
  const int64_t n_out = weight.shape[0], n_blocks = weight.shape[1] / kQK_K;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const auto* x = reinterpret_cast<const BlockQ8_K*>(args.activations + r * args.activation_stride);
    for (int64_t c = col_begin; c < col_end; ++c) {
      const auto* w = reinterpret_cast<const BlockQ5_K*>(static_cast<const uint8_t*>(weight.data) + c * weight.row_bytes());
      args.y[r * n_out + c] = q5_k_row_dot(w, x, n_blocks);
    }
  }
}

void compute_k_low_bits(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin,
                        int64_t col_end) {
  const TensorView& weight = *args.weight;
  const int64_t n_out = weight.shape[0], n_blocks = weight.shape[1] / kQK_K;
  const bool q2 = weight.dtype == DType::kQ2_K;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const auto* x = reinterpret_cast<const BlockQ8_K*>(args.activations + r * args.activation_stride);
    for (int64_t c = col_begin; c < col_end; ++c) {
      const void* w = weight.row(c);
      args.y[r * n_out + c] = q2 ? q2_k_row_dot(static_cast<const BlockQ2_K*>(w), x, n_blocks)
                                 : q3_k_row_dot(static_cast<const BlockQ3_K*>(w), x, n_blocks);
    }
  }
}

}  // namespace so::cpu::detail::avx2
