// Scalar reference matmul: per-block integer dot products against activations quantized
// per row, as llama.cpp's CPU path computes them, so logits track llama.cpp's closely.
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul_internal.h"
#include "base/check.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace so::cpu {
namespace detail {
namespace {

// Q4_0 x Q8_0: value = d * (nibble - 8); the block scales multiply the exact integer sum.
float dot_q4_0_q8_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int isum = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      isum += ((w[b].qs[j] & 0xF) - 8) * x[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + kQK4_0 / 2];
    }
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d)) * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

// Q5_0 x Q8_0: value = d * (q - 16); the block scales multiply the exact integer sum.
float dot_q5_0_q8_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint32_t qh;
    __builtin_memcpy(&qh, w[b].qh, sizeof(qh));
    int isum = 0;
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      isum += (((w[b].qs[j] & 0xF) | int((qh >> j) & 1) << 4) - 16) * x[b].qs[j];
      isum += (((w[b].qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4) - 16) * x[b].qs[j + kQK5_0 / 2];
    }
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d)) * static_cast<float>(isum);
  }
  return sum;
}

// MXFP4 x Q8_0: the table's integers times the activations, exact; then both scales.
float dot_mxfp4_q8_0(const BlockMXFP4* w, const BlockQ8_0* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += kMxfp4Values[w[b].qs[j] & 0xF] * x[b].qs[j];
      isum += kMxfp4Values[w[b].qs[j] >> 4] * x[b].qs[j + 16];
    }
    sum += (mxfp4_half_scale(w[b].e) * fp16_to_fp32(x[b].d)) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K / Q5_K x Q8_K, per super-block: sum(scale_j * dot_j) is exact in int32; the mins meet
// the activation's bsums (sums of 16), so the min term needs no per-element work.
static float k4_family_dot(float sum, const uint8_t* scales, uint16_t d_bits, uint16_t dmin_bits, const uint8_t* q,
                           const uint8_t* qh, const BlockQ8_K& x) {
  int isum = 0, imin = 0;
  const int8_t* a = x.qs;
  for (int sub = 0; sub < 8; sub += 2, q += 32, a += 64) {
    uint8_t scale_low, min_low, scale_high, min_high;
    q4_k_scale_min(sub, scales, &scale_low, &min_low);
    q4_k_scale_min(sub + 1, scales, &scale_high, &min_high);
    int dot_low = 0, dot_high = 0;
    for (int l = 0; l < 32; ++l) {
      dot_low += k4_family_value(q, qh, l, sub, false) * a[l];
      dot_high += k4_family_value(q, qh, l, sub, true) * a[l + 32];
    }
    isum += scale_low * dot_low + scale_high * dot_high;
    imin += min_low * (x.bsums[2 * sub] + x.bsums[2 * sub + 1]);
    imin += min_high * (x.bsums[2 * sub + 2] + x.bsums[2 * sub + 3]);
  }
  return add_kquant_block(sum, isum, imin, fp16_to_fp32(d_bits), fp16_to_fp32(dmin_bits), x.d);
}

float dot_q5_k_q8_k(const BlockQ5_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) sum = k4_family_dot(sum, w[b].scales, w[b].d, w[b].dmin, w[b].qs, w[b].qh, x[b]);
  return sum;
}

namespace {

float dot_q8_0_q8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int isum = 0;
    for (int j = 0; j < kQK8_0; ++j) isum += w[b].qs[j] * x[b].qs[j];
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d)) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_1 x Q8_1: value = d * nibble + m; the m term meets the activation's s = d_x * sum(q_x).
float dot_q4_1_q8_1(const BlockQ4_1* w, const BlockQ8_1* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int isum = 0;
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      isum += (w[b].qs[j] & 0xF) * x[b].qs[j];
      isum += (w[b].qs[j] >> 4) * x[b].qs[j + kQK4_1 / 2];
    }
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d)) * static_cast<float>(isum) +
           fp16_to_fp32(w[b].m) * fp16_to_fp32(x[b].s);
  }
  return sum;
}

float dot_q4_k_q8_k(const BlockQ4_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) sum = k4_family_dot(sum, w[b].scales, w[b].d, w[b].dmin, w[b].qs, nullptr, x[b]);
  return sum;
}

// Q6_K x Q8_K, per super-block: sum(scale_j * dot_j) over 16 sub-blocks of 16, exact in int32.
float dot_q6_k_q8_k(const BlockQ6_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int q[kQK_K];  // 6-bit values minus 32, in element order
    const uint8_t* ql = w[b].ql;
    const uint8_t* qh = w[b].qh;
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32) {
      int* out = q + half * 128;
      for (int l = 0; l < 32; ++l) {
        out[l + 0] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      }
    }
    int isum = 0;
    for (int sub = 0; sub < kQK_K / 16; ++sub) {
      int dot = 0;
      for (int l = 0; l < 16; ++l) dot += q[sub * 16 + l] * x[b].qs[sub * 16 + l];
      isum += w[b].scales[sub] * dot;
    }
    sum = add_kquant_block(sum, isum, 0, fp16_to_fp32(w[b].d), 0.0f, x[b].d);
  }
  return sum;
}

// Q2_K x Q8_K: sum(scale_j * dot_j) over 16 sub-blocks of 16, exact in int32; the mins meet
// the activation's 16-element sums.
float dot_q2_k_q8_k(const BlockQ2_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int isum = 0, imin = 0;
    for (int sub = 0; sub < kQK_K / 16; ++sub) {
      int dot = 0;
      for (int l = 0; l < 16; ++l) dot += k2_low_bits(w[b].qs, sub * 16 + l) * x[b].qs[sub * 16 + l];
      isum += (w[b].scales[sub] & 0xF) * dot;
      imin += (w[b].scales[sub] >> 4) * x[b].bsums[sub];
    }
    sum = add_kquant_block(sum, isum, imin, fp16_to_fp32(w[b].d), fp16_to_fp32(w[b].dmin), x[b].d);
  }
  return sum;
}

// Q3_K x Q8_K, per super-block: sum(scale_j * dot_j), exact in int32.
float dot_q3_k_q8_k(const BlockQ3_K* w, const BlockQ8_K* x, int64_t n_blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    int scales[16];
    q3_k_scales(w[b].scales, scales);
    int isum = 0;
    for (int sub = 0; sub < kQK_K / 16; ++sub) {
      int dot = 0;
      for (int l = 0; l < 16; ++l) dot += q3_k_value(w[b], sub * 16 + l) * x[b].qs[sub * 16 + l];
      isum += scales[sub] * dot;
    }
    sum = add_kquant_block(sum, isum, 0, fp16_to_fp32(w[b].d), 0.0f, x[b].d);
  }
  return sum;
}

// note: float weights meet f32 activations and the reference sums in double. llama.cpp
// rounds the activations to f16/bf16 for F16/BF16 weights; we keep them f32, so logits of
// F16/BF16 models differ from llama.cpp's by that rounding.
template <typename ToFloat>
float dot_float(const uint16_t* w, const float* x, int64_t n, ToFloat to_float) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(to_float(w[i]) * x[i]);
  return static_cast<float>(sum);
}

float dot_f32(const float* w, const float* x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i] * x[i]);
  return static_cast<float>(sum);
}

}  // namespace

DType activation_dtype(DType weight_dtype) {
  switch (weight_dtype) {
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
    case DType::kMXFP4:
      return DType::kQ8_0;
    case DType::kQ4_1:
      return DType::kQ8_1;
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return DType::kQ8_K;
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return DType::kF32;
    default:
      SO_CHECK(false, "matmul: weight dtype ", dtype_name(weight_dtype), " is not one of ", supported_weight_dtypes());
      __builtin_unreachable();
  }
}

void check_matmul_weight(DType weight_dtype, int64_t n_in) {
  const DType activation = activation_dtype(weight_dtype);
  const int64_t block = dtype_info(weight_dtype).block_elements;
  SO_CHECK_EQ(n_in % block, 0, "matmul: n_in of a ", dtype_name(weight_dtype), " weight");
  SO_CHECK_EQ(n_in % dtype_info(activation).block_elements, 0, "matmul: n_in of the activations");
}

int64_t reference_activation_row_bytes(DType weight_dtype, int64_t n_in) {
  return dtype_row_bytes(activation_dtype(weight_dtype), n_in);
}

void reference_quantize_activation_row(DType weight_dtype, const float* x, int64_t n_in, void* out) {
  switch (activation_dtype(weight_dtype)) {
    case DType::kQ8_0:
      return quantize_row_q8_0(x, out, n_in);
    case DType::kQ8_1:
      return quantize_row_q8_1(x, out, n_in);
    case DType::kQ8_K:
      return quantize_row_q8_k(x, out, n_in);
    default:
      __builtin_memcpy(out, x, n_in * sizeof(float));
      return;
  }
}

float reference_dot(DType weight_dtype, const void* weight_row, const void* activation_row, int64_t n_in) {
  const int64_t n_blocks = n_in / dtype_info(weight_dtype).block_elements;
  switch (weight_dtype) {
    case DType::kQ4_0:
      return dot_q4_0_q8_0(static_cast<const BlockQ4_0*>(weight_row), static_cast<const BlockQ8_0*>(activation_row),
                           n_blocks);
    case DType::kMXFP4:
      return dot_mxfp4_q8_0(static_cast<const BlockMXFP4*>(weight_row), static_cast<const BlockQ8_0*>(activation_row),
                            n_blocks);
    case DType::kQ5_0:
      return dot_q5_0_q8_0(static_cast<const BlockQ5_0*>(weight_row), static_cast<const BlockQ8_0*>(activation_row),
                           n_blocks);
    case DType::kQ8_0:
      return dot_q8_0_q8_0(static_cast<const BlockQ8_0*>(weight_row), static_cast<const BlockQ8_0*>(activation_row),
                           n_blocks);
    case DType::kQ4_1:
      return dot_q4_1_q8_1(static_cast<const BlockQ4_1*>(weight_row), static_cast<const BlockQ8_1*>(activation_row),
                           n_blocks);
    case DType::kQ4_K:
      return dot_q4_k_q8_k(static_cast<const BlockQ4_K*>(weight_row), static_cast<const BlockQ8_K*>(activation_row),
                           n_blocks);
    case DType::kQ5_K:
      return dot_q5_k_q8_k(static_cast<const BlockQ5_K*>(weight_row), static_cast<const BlockQ8_K*>(activation_row),
                           n_blocks);
    case DType::kQ6_K:
      return dot_q6_k_q8_k(static_cast<const BlockQ6_K*>(weight_row), static_cast<const BlockQ8_K*>(activation_row),
                           n_blocks);
    case DType::kQ2_K:
      return dot_q2_k_q8_k(static_cast<const BlockQ2_K*>(weight_row), static_cast<const BlockQ8_K*>(activation_row),
                           n_blocks);
    case DType::kQ3_K:
      return dot_q3_k_q8_k(static_cast<const BlockQ3_K*>(weight_row), static_cast<const BlockQ8_K*>(activation_row),
                           n_blocks);
    case DType::kF32:
      return dot_f32(static_cast<const float*>(weight_row), static_cast<const float*>(activation_row), n_in);
    case DType::kF16:
      return dot_float(static_cast<const uint16_t*>(weight_row), static_cast<const float*>(activation_row), n_in,
                       fp16_to_fp32);
    case DType::kBF16:
      return dot_float(static_cast<const uint16_t*>(weight_row), static_cast<const float*>(activation_row), n_in,
                       bf16_to_fp32);
    default:
      SO_CHECK(false, "matmul: unsupported weight dtype ", dtype_name(weight_dtype));
      __builtin_unreachable();
  }
}

}  // namespace detail

namespace reference {

void matmul(const TensorView& weight, const float* x, int64_t n_rows, float* y) {
  SO_CHECK_EQ(weight.shape.n_dims, 2, "matmul: weight must be (n_out, n_in)");
  const int64_t n_out = weight.shape[0], n_in = weight.shape[1];
  detail::check_matmul_weight(weight.dtype, n_in);
  std::vector<uint8_t> activation(detail::reference_activation_row_bytes(weight.dtype, n_in));
  for (int64_t r = 0; r < n_rows; ++r) {
    detail::reference_quantize_activation_row(weight.dtype, x + r * n_in, n_in, activation.data());
    for (int64_t o = 0; o < n_out; ++o) {
      y[r * n_out + o] = detail::reference_dot(weight.dtype, weight.row(o), activation.data(), n_in);
    }
  }
}

}  // namespace reference
}  // namespace so::cpu
