#include "tensor/quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"

namespace so {
namespace {

void dequantize_q4_0(const BlockQ4_0* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i, y += kQK4_0) {
    const float d = fp16_to_fp32(blocks[i].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[j] = static_cast<float>((blocks[i].qs[j] & 0xF) - 8) * d;
      y[j + kQK4_0 / 2] = static_cast<float>((blocks[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const BlockQ4_1* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i, y += kQK4_1) {
    const float d = fp16_to_fp32(blocks[i].d);
    const float m = fp16_to_fp32(blocks[i].m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      y[j] = static_cast<float>(blocks[i].qs[j] & 0xF) * d + m;
      y[j + kQK4_1 / 2] = static_cast<float>(blocks[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const BlockQ5_0* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i, y += kQK5_0) {
    const float d = fp16_to_fp32(blocks[i].d);
    uint32_t qh;
    std::memcpy(&qh, blocks[i].qh, sizeof(qh));
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int low = (blocks[i].qs[j] & 0xF) | int((qh >> j) & 1) << 4;
      const int high = (blocks[i].qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
      y[j] = static_cast<float>(low - 16) * d;
      y[j + kQK5_0 / 2] = static_cast<float>(high - 16) * d;
    }
  }
}

void dequantize_mxfp4(const BlockMXFP4* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i, y += 32) {
    const float d = mxfp4_half_scale(blocks[i].e);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(kMxfp4Values[blocks[i].qs[j] & 0xF]) * d;
      y[j + 16] = static_cast<float>(kMxfp4Values[blocks[i].qs[j] >> 4]) * d;
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i, y += kQK8_0) {
    const float d = fp16_to_fp32(blocks[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(blocks[i].qs[j]) * d;
  }
}

// Q4_K and Q5_K (qh: the fifth bits, null for Q4_K): each 32 bytes of qs hold a sub-block
// pair, low nibbles then high nibbles.
void dequantize_k4_family(const uint8_t* scales, float d, float dmin, const uint8_t* q, const uint8_t* qh, float* y) {
  for (int sub = 0; sub < 8; sub += 2, q += 32) {
    uint8_t scale, min;
    q4_k_scale_min(sub, scales, &scale, &min);
    const float d_low = d * scale, m_low = dmin * min;
    q4_k_scale_min(sub + 1, scales, &scale, &min);
    const float d_high = d * scale, m_high = dmin * min;
    for (int l = 0; l < 32; ++l) *y++ = d_low * static_cast<float>(k4_family_value(q, qh, l, sub, false)) - m_low;
    for (int l = 0; l < 32; ++l) *y++ = d_high * static_cast<float>(k4_family_value(q, qh, l, sub, true)) - m_high;
  }
}

void dequantize_q4_k(const BlockQ4_K* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i, y += kQK_K) {
    dequantize_k4_family(blocks[i].scales, fp16_to_fp32(blocks[i].d), fp16_to_fp32(blocks[i].dmin), blocks[i].qs,
                         nullptr, y);
  }
}

void dequantize_q5_k(const BlockQ5_K* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i, y += kQK_K) {
    dequantize_k4_family(blocks[i].scales, fp16_to_fp32(blocks[i].d), fp16_to_fp32(blocks[i].dmin), blocks[i].qs,
                         blocks[i].qh, y);
  }
}

void dequantize_q6_k(const BlockQ6_K* blocks, float* y, int64_t n_blocks) {
  for (int64_t i = 0; i < n_blocks; ++i) {
    const float d = fp16_to_fp32(blocks[i].d);
    const uint8_t* ql = blocks[i].ql;
    const uint8_t* qh = blocks[i].qh;
    const int8_t* scales = blocks[i].scales;
    // Two halves of 128; in each, 4 groups of 32 share ql bytes (low/high nibble) and qh bytes.
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, scales += 8) {
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q1 = static_cast<int>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * static_cast<float>(scales[s + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(scales[s + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(scales[s + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(scales[s + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void dequantize_q2_k(const BlockQ2_K* blocks, float* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, y += kQK_K) {
    const float d = fp16_to_fp32(blocks[b].d), dmin = fp16_to_fp32(blocks[b].dmin);
    for (int i = 0; i < kQK_K; ++i) {
      const int scale = blocks[b].scales[i / 16];
      y[i] = d * static_cast<float>(scale & 0xF) * static_cast<float>(k2_low_bits(blocks[b].qs, i)) -
             dmin * static_cast<float>(scale >> 4);
    }
  }
}

void dequantize_q3_k(const BlockQ3_K* blocks, float* y, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, y += kQK_K) {
    const float d = fp16_to_fp32(blocks[b].d);
    int scales[16];
    q3_k_scales(blocks[b].scales, scales);
    for (int i = 0; i < kQK_K; ++i) {
      y[i] = d * static_cast<float>(scales[i / 16]) * static_cast<float>(q3_k_value(blocks[b], i));
    }
  }
}

// Shared by Q8_0 and Q8_1: scale so the largest magnitude maps to 127.
// Returns d and writes the rounded integers.
float quantize_block_symmetric_127(const float* x, int8_t* qs, int* sum) {
  float max_abs = 0.0f;
  for (int j = 0; j < 32; ++j) max_abs = std::max(max_abs, std::fabs(x[j]));
  const float d = max_abs / 127.0f;
  const float inverse = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
  int total = 0;
  for (int j = 0; j < 32; ++j) {
    qs[j] = static_cast<int8_t>(round_to_nearest_int(x[j] * inverse));
    total += qs[j];
  }
  *sum = total;
  return d;
}

}  // namespace

void dequantize_row(DType dtype, const void* source, float* destination, int64_t n) {
  const DTypeInfo& info = dtype_info(dtype);
  SO_CHECK_EQ(n % info.block_elements, 0, dtype_name(dtype), " row length");
  const int64_t n_blocks = n / info.block_elements;
  switch (dtype) {
    case DType::kF32:
      std::memcpy(destination, source, n * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(source);
      for (int64_t i = 0; i < n; ++i) destination[i] = fp16_to_fp32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* b = static_cast<const uint16_t*>(source);
      for (int64_t i = 0; i < n; ++i) destination[i] = bf16_to_fp32(b[i]);
      return;
    }
    case DType::kQ4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(source), destination, n_blocks);
    case DType::kQ4_1: return dequantize_q4_1(static_cast<const BlockQ4_1*>(source), destination, n_blocks);
    case DType::kMXFP4: return dequantize_mxfp4(static_cast<const BlockMXFP4*>(source), destination, n_blocks);
    case DType::kQ5_0: return dequantize_q5_0(static_cast<const BlockQ5_0*>(source), destination, n_blocks);
    case DType::kQ8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(source), destination, n_blocks);
    case DType::kQ4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(source), destination, n_blocks);
    case DType::kQ5_K: return dequantize_q5_k(static_cast<const BlockQ5_K*>(source), destination, n_blocks);
    case DType::kQ6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(source), destination, n_blocks);
    case DType::kQ2_K: return dequantize_q2_k(static_cast<const BlockQ2_K*>(source), destination, n_blocks);
    case DType::kQ3_K: return dequantize_q3_k(static_cast<const BlockQ3_K*>(source), destination, n_blocks);
    default: SO_CHECK(false, "dequantize_row: ", dtype_name(dtype), " is not a weight dtype of this engine");
  }
}

void quantize_row_q8_0(const float* x, void* destination, int64_t n) {
  SO_CHECK_EQ(n % kQK8_0, 0);
  auto* blocks = static_cast<BlockQ8_0*>(destination);
  for (int64_t i = 0; i < n / kQK8_0; ++i, x += kQK8_0) {
    int unused_sum;
    blocks[i].d = fp32_to_fp16(quantize_block_symmetric_127(x, blocks[i].qs, &unused_sum));
  }
}

void quantize_row_q8_1(const float* x, void* destination, int64_t n) {
  SO_CHECK_EQ(n % kQK8_1, 0);
  auto* blocks = static_cast<BlockQ8_1*>(destination);
  for (int64_t i = 0; i < n / kQK8_1; ++i, x += kQK8_1) {
    int sum;
    const float d = quantize_block_symmetric_127(x, blocks[i].qs, &sum);
    blocks[i].d = fp32_to_fp16(d);
    blocks[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

void quantize_row_q8_k(const float* x, void* destination, int64_t n) {
  SO_CHECK_EQ(n % kQK_K, 0);
  auto* blocks = static_cast<BlockQ8_K*>(destination);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    BlockQ8_K& block = blocks[i];
    // note: the element of largest magnitude maps to -127 (sign kept), as llama.cpp does.
    float max_abs = 0.0f, max_signed = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) > max_abs) {
        max_abs = std::fabs(x[j]);
        max_signed = x[j];
      }
    }
    if (max_abs == 0.0f) {
      std::memset(&block, 0, sizeof block);
      continue;
    }
    const float inverse_scale = -127.0f / max_signed;
    for (int j = 0; j < kQK_K; ++j) {
      block.qs[j] = static_cast<int8_t>(std::min(127, round_to_nearest_int(inverse_scale * x[j])));
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += block.qs[g * 16 + j];
      block.bsums[g] = static_cast<int16_t>(sum);
    }
    block.d = 1.0f / inverse_scale;
  }
}

void quantize_row_q4_0(const float* x, void* destination, int64_t n) {
  SO_CHECK_EQ(n % kQK4_0, 0);
  auto* blocks = static_cast<BlockQ4_0*>(destination);
  for (int64_t i = 0; i < n / kQK4_0; ++i, x += kQK4_0) {
    float max_abs = 0.0f, max_signed = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (std::fabs(x[j]) > max_abs) {
        max_abs = std::fabs(x[j]);
        max_signed = x[j];
      }
    }
    const float d = max_signed / -8.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int low = std::clamp(round_to_nearest_int(x[j] * inverse) + 8, 0, 15);
      const int high = std::clamp(round_to_nearest_int(x[j + kQK4_0 / 2] * inverse) + 8, 0, 15);
      blocks[i].qs[j] = static_cast<uint8_t>(low | (high << 4));
    }
  }
}

void quantize_row_q4_1(const float* x, void* destination, int64_t n) {
  SO_CHECK_EQ(n % kQK4_1, 0);
  auto* blocks = static_cast<BlockQ4_1*>(destination);
  for (int64_t i = 0; i < n / kQK4_1; ++i, x += kQK4_1) {
    const auto [min_it, max_it] = std::minmax_element(x, x + kQK4_1);
    const float min = *min_it;
    const float d = (*max_it - min) / 15.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[i].d = fp32_to_fp16(d);
    blocks[i].m = fp32_to_fp16(min);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const int low = std::clamp(round_to_nearest_int((x[j] - min) * inverse), 0, 15);
      const int high = std::clamp(round_to_nearest_int((x[j + kQK4_1 / 2] - min) * inverse), 0, 15);
      blocks[i].qs[j] = static_cast<uint8_t>(low | (high << 4));
    }
  }
}

}  // namespace so
