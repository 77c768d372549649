// Activation quantization for the AVX2 kernels: the same integers and scales as
// tensor/quants.h's quantize_row_q8_0 / q8_1 / q8_k, written in this ISA's packed rows
// (matmul_avx2.h).
#include <cstring>

#include "backend/cpu/matmul_avx2.h"
#include "backend/cpu/matmul_internal.h"
#include "base/check.h"

namespace so::cpu::detail::avx2 {
namespace {

// Rounds f32 to the nearest f16 value (ties to even) and back, as storing the scale in a
// GGUF block would.
inline float round_through_f16(float value) { return _cvtsh_ss(_cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT)); }

inline float max_lane(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// 32 floats * scale, rounded half to even, packed to int8 in element order.
inline __m256i round_pack_32(const float* x, __m256 scale) {
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 0), scale));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), scale));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), scale));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), scale));
  // note: packs interleave 128-bit lanes; the final permute restores element order.
  const __m256i i01 = _mm256_packs_epi32(i0, i1);
  const __m256i i23 = _mm256_packs_epi32(i2, i3);
  const __m256i bytes = _mm256_packs_epi16(i01, i23);
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline int sum_bytes(__m256i q) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i pairs = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), ones);
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// The three Q8_0 / Q8_1 row flavours of activation_layout.h.
enum class RowKind { kForQ4_0, kForQ8_0, kForQ4_1 };

void quantize_q8_32(const float* x, int64_t n_in, uint8_t* out, RowKind kind) {
  const int64_t n_blocks = n_in / 32, padded_blocks = q8_32_padded_blocks(n_in);
  auto* qs = reinterpret_cast<int8_t*>(out);
  auto* d = reinterpret_cast<float*>(out + n_in);
  float* s = d + padded_blocks;
  auto* lane_offsets = reinterpret_cast<int32_t*>(s + padded_blocks);
  std::memset(d + n_blocks, 0, (padded_blocks - n_blocks) * sizeof(float));
  std::memset(s + n_blocks, 0, (padded_blocks - n_blocks) * sizeof(float));
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < n_blocks; ++b, x += 32) {
    __m256 max = _mm256_and_ps(_mm256_loadu_ps(x), abs_mask);
    for (int j = 8; j < 32; j += 8) max = _mm256_max_ps(max, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
    const float max_abs = max_lane(max);
    const float scale = max_abs / 127.0f;
    const float inverse = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
    const __m256i q = round_pack_32(x, _mm256_set1_ps(inverse));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32), q);
    const int sum = sum_bytes(q);
    d[b] = round_through_f16(scale);
    if (kind == RowKind::kForQ4_1) {
      s[b] = round_through_f16(scale * static_cast<float>(sum));
    } else {
      const int32_t offset = -sum;
      std::memcpy(&s[b], &offset, sizeof offset);  // int32 in the f32 slot
    }
    if (kind == RowKind::kForQ8_0) {
      // -128 * (sum of each lane's 4 quants), the lanes of maddubs + madd and of vpdpbusd
      const __m256i quads = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
      _mm256_store_si256(reinterpret_cast<__m256i*>(lane_offsets + 8 * b),
                         _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(quads, 7)));
    }
  }
}

void quantize_q8_k(const float* x, int64_t n_in, uint8_t* out) {
  const int64_t n_blocks = n_in / 256;
  auto* qs = reinterpret_cast<int8_t*>(out);
  auto* d = reinterpret_cast<float*>(out + n_in);
  auto* bsums = reinterpret_cast<int16_t*>(d + n_blocks);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < n_blocks; ++b, x += 256) {
    __m256 max = _mm256_setzero_ps();
    for (int j = 0; j < 256; j += 8) max = _mm256_max_ps(max, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
    const float max_abs = max_lane(max);
    int8_t* q = qs + b * 256;
    if (max_abs == 0.0f) {
      std::memset(q, 0, 256);
      d[b] = 0.0f;
      std::memset(bsums + b * 16, 0, 32);
      continue;
    }
    // note: the reference keeps the sign of the first element of largest magnitude.
    float max_signed = 0.0f;
    const __m256 target = _mm256_set1_ps(max_abs);
    for (int j = 0; j < 256; j += 8) {
      const int mask =
          _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), target, _CMP_EQ_OQ));
      if (mask != 0) {
        max_signed = x[j + __builtin_ctz(mask)];
        break;
      }
    }
    const float inverse = -127.0f / max_signed;
    for (int j = 0; j < 256; j += 32) {
      // note: packs saturate at 127 exactly as the reference's min(127, q) clamps.
      const __m256i packed = round_pack_32(x + j, _mm256_set1_ps(inverse));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), packed);
      // sums of each 16: maddubs with ones gives pair sums, madd with ones quads, then fold.
      const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), packed);
      const __m256i quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));  // 8 x int32, 4 elements each
      const __m256i eights = _mm256_hadd_epi32(quads, quads);                // lane halves: (0-7, 8-15, ...)
      const __m256i sixteens = _mm256_hadd_epi32(eights, eights);
      bsums[b * 16 + j / 16] = static_cast<int16_t>(_mm256_extract_epi32(sixteens, 0));
      bsums[b * 16 + j / 16 + 1] = static_cast<int16_t>(_mm256_extract_epi32(sixteens, 4));
    }
    d[b] = 1.0f / inverse;
  }
}

}  // namespace

int64_t activation_row_bytes(DType weight_dtype, int64_t n_in) {
  switch (activation_dtype(weight_dtype)) {
    case DType::kQ8_0:
    case DType::kQ8_1:
      return q8_32_row_bytes(n_in, weight_dtype != DType::kQ4_0 && weight_dtype != DType::kQ4_1);
    case DType::kQ8_K:
      return q8_k_row_bytes(n_in);
    default:
      return 0;  // float weights read x as is
  }
}

void quantize_activation_row(DType weight_dtype, const float* x, int64_t n_in, void* out) {
  auto* bytes = static_cast<uint8_t*>(out);
  switch (activation_dtype(weight_dtype)) {
    case DType::kQ8_0:
      return quantize_q8_32(x, n_in, bytes, weight_dtype == DType::kQ4_0 ? RowKind::kForQ4_0 : RowKind::kForQ8_0);
    case DType::kQ8_1:
      return quantize_q8_32(x, n_in, bytes, RowKind::kForQ4_1);
    case DType::kQ8_K:
      return quantize_q8_k(x, n_in, bytes);
    default:
      SO_CHECK(false, "quantize_activation_row: float weights need no packing");
  }
}

}  // namespace so::cpu::detail::avx2
