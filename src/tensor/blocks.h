// Quantized block layouts, byte for byte as GGUF stores them.
#pragma once

#include <cstdint>

namespace so {

constexpr int kQK4_0 = 32;
constexpr int kQK4_1 = 32;
constexpr int kQK5_0 = 32;
constexpr int kQK8_0 = 32;
constexpr int kQK8_1 = 32;
constexpr int kQK_K = 256;  // super-block of the K-quants

// value = d * (q - 8), q the 4-bit nibble; element j in low nibble of qs[j], j+16 in the high one.
struct BlockQ4_0 {
  uint16_t d;  // f16
  uint8_t qs[kQK4_0 / 2];
};
// value = d * q + m
struct BlockQ4_1 {
  uint16_t d;  // f16
  uint16_t m;  // f16
  uint8_t qs[kQK4_1 / 2];
};
// value = d * (q - 16), q = nibble | (bit j of qh) << 4; nibbles placed as in Q4_0.
struct BlockQ5_0 {
  uint16_t d;  // f16
  uint8_t qh[4];  // the fifth bits, element j at bit j (little-endian)
  uint8_t qs[kQK5_0 / 2];
};
// OCP microscaling FP4 (gpt-oss experts): value = kMxfp4Values[nibble] * 2^(e - 128), the
// table holding twice the e2m1 values; nibbles placed as in Q4_0.
struct BlockMXFP4 {
  uint8_t e;  // E8M0 shared exponent
  uint8_t qs[16];
};
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
// Half the E8M0 scale 2^(e - 127) as a float (exact; subnormal for e < 2).
inline float mxfp4_half_scale(uint8_t e) {
  const uint32_t bits = e < 2 ? uint32_t(0x00200000) << e : uint32_t(e - 1) << 23;
  float value;
  __builtin_memcpy(&value, &bits, sizeof(value));
  return value;
}
// value = d * q
struct BlockQ8_0 {
  uint16_t d;  // f16
  int8_t qs[kQK8_0];
};
// Activations for Q4_1 weights: s = d * sum(qs) carries the dot product with the weight's m.
struct BlockQ8_1 {
  uint16_t d;  // f16
  uint16_t s;  // f16
  int8_t qs[kQK8_1];
};
// 8 sub-blocks of 32; 6-bit scale and min per sub-block packed in scales[12].
// value = d * scale_j * q - dmin * min_j
struct BlockQ4_K {
  uint16_t d;     // f16, super-block scale of the scales
  uint16_t dmin;  // f16, super-block scale of the mins
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
// Q4_K with a fifth bit per value: q = nibble | (bit of qh) << 4; sub-block 2p's nibbles are
// the low ones of qs[32p..32p+32) with qh bit 2p, sub-block 2p+1's the high ones with bit 2p+1.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16 with 2-bit values. Element i (half h = i / 128, j = i % 128 / 32,
// l = i % 32) is bits 2j of qs[32h + l]; scales[i / 16]: scale in the low nibble, min in the
// high one. value = d * (scale & 15) * q - dmin * (scale >> 4)
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;     // f16
  uint16_t dmin;  // f16
};
// Q2_K's 2-bit layout plus a third bit in hmask[l] bit 4h + j (clear: the value is 4 lower);
// 16 6-bit scales (minus 32) packed in 12 bytes. value = d * (scale - 32) * q, q in -4..3
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;  // f16
};
// Element i of a Q2_K/Q3_K block's 2-bit values.
inline int k2_low_bits(const uint8_t* qs, int i) { return (qs[(i / 128) * 32 + i % 32] >> (2 * (i % 128 / 32))) & 3; }
// Element i of a Q3_K block, -4..3.
inline int q3_k_value(const BlockQ3_K& b, int i) {
  const int bit = (i / 128) * 4 + i % 128 / 32;
  return k2_low_bits(b.qs, i) - ((b.hmask[i % 32] >> bit) & 1 ? 0 : 4);
}
// Q3_K's 16 scales minus 32: the low 4 bits from bytes 0..7 (low nibbles, then high), the
// high 2 bits from bytes 8..11.
inline void q3_k_scales(const uint8_t* packed, int* scales) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    scales[j] = (low | (high << 4)) - 32;
  }
}

// 16 sub-blocks of 16; q = (4 low bits from ql | 2 high bits from qh) - 32.
// value = d * scales_j * q
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // f16
};
// Activations for K-quant weights. bsums: sums of each 16 consecutive qs.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

// Element l of the sub-block pair (sub, sub + 1) that share 32 bytes of qs in Q4_K and Q5_K:
// the low (high = false) or high nibble of q[l], with Q5_K's fifth bit from qh[l] (qh null: Q4_K).
inline int k4_family_value(const uint8_t* q, const uint8_t* qh, int l, int sub, bool high) {
  const int nibble = high ? q[l] >> 4 : q[l] & 0xF;
  return qh == nullptr ? nibble : nibble | ((qh[l] >> (sub + (high ? 1 : 0))) & 1) << 4;
}

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockMXFP4) == 17);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ8_K) == 292);

// Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K block.
inline void q4_k_scale_min(int j, const uint8_t* scales, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *min = scales[j + 4] & 63;
  } else {
    *scale = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

}  // namespace so
