// Scalar reference versions of the non-matmul ops, with llama.cpp's CPU semantics.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops_internal.h"
#include "base/check.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace so::cpu {
namespace detail {

RopeCorrectionDims rope_correction_dims(const RopeParams& params) {
  // YaRN: the dimension at which a frequency completes n_rotations over the original context.
  auto dim_for = [&](float n_rotations) {
    return static_cast<float>(params.n_rot) *
           std::log(static_cast<float>(params.n_ctx_orig) / (n_rotations * 2.0f * std::numbers::pi_v<float>)) /
           (2.0f * std::log(params.theta_base));
  };
  const float start = std::floor(dim_for(params.beta_fast));
  const float end = std::ceil(dim_for(params.beta_slow));
  return {std::max(0.0f, start), std::min(static_cast<float>(params.n_rot - 1), end)};
}

void rope_cos_sin(const RopeParams& params, const RopeCorrectionDims& corr, float theta_scale, int32_t position,
                  float* cos_sin) {
  // note: theta advances by repeated float multiplication, not powf per pair, because that is
  // how llama.cpp computes it and the last bits of the angles differ otherwise.
  float theta = static_cast<float>(position);
  for (int i = 0; i < params.n_rot / 2; ++i, theta *= theta_scale) {
    const float theta_extrap = params.freq_factors ? theta / params.freq_factors[i] : theta;
    const float theta_interp = params.freq_scale * theta_extrap;
    float angle = theta_interp;
    float mscale = params.attn_factor;
    if (params.ext_factor != 0.0f) {
      const float ramp_y = static_cast<float>(i - corr.low) / std::max(0.001f, corr.high - corr.low);
      const float ramp_mix = (1.0f - std::min(1.0f, std::max(0.0f, ramp_y))) * params.ext_factor;
      angle = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
      mscale *= 1.0f + 0.1f * std::log(1.0f / params.freq_scale);
    }
    cos_sin[2 * i] = std::cos(angle) * mscale;
    cos_sin[2 * i + 1] = std::sin(angle) * mscale;
  }
}

void rope_rotate_head(float* head, const float* cos_sin, const RopeParams& params) {
  // Normal: pairs (2i, 2i+1); NeoX: pairs (i, i + n_rot/2). Dims past n_rot pass through.
  const int half = params.n_rot / 2;
  const int stride = params.style == RopeStyle::kNormal ? 2 : 1;
  const int offset = params.style == RopeStyle::kNormal ? 1 : half;
  for (int i = 0; i < half; ++i) {
    float* pair = head + i * stride;
    const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    const float x0 = pair[0], x1 = pair[offset];
    // note: one product rounded, the other fused, as llama.cpp's CPU rope (GCC contracts
    // its x0 c - x1 s that way); two rounded products differ in the last bit at ~1 in 8.
    pair[0] = std::fma(x0, c, -(x1 * s));
    pair[offset] = std::fma(x0, s, x1 * c);
  }
}

void check_rope_params(const RopeParams& params, int64_t head_dim) {
  SO_CHECK(params.n_rot > 0 && params.n_rot % 2 == 0 && params.n_rot <= head_dim, "rope: n_rot ", params.n_rot,
           " must be even and in (0, head_dim=", head_dim, "]");
}

}  // namespace detail

namespace reference {

void embedding(const TensorView& table, std::span<const int32_t> tokens, float* out) {
  const int64_t n_vocab = table.shape[0], dim = table.shape.inner();
  for (size_t t = 0; t < tokens.size(); ++t) {
    SO_CHECK(tokens[t] >= 0 && tokens[t] < n_vocab, "embedding: token ", tokens[t], " outside [0, ", n_vocab, ")");
    dequantize_row(table.dtype, table.row(tokens[t]), out + t * dim, dim);
  }
}

void rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * dim;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(row[i] * row[i]);
    const float mean = static_cast<float>(sum / static_cast<double>(dim));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = (row[i] * scale) * weight[i];
  }
}

void rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim, const RopeParams& params) {
  detail::check_rope_params(params, head_dim);
  const float theta_scale = std::pow(params.theta_base, -2.0f / static_cast<float>(params.n_rot));
  const detail::RopeCorrectionDims corr =
      params.ext_factor != 0.0f ? detail::rope_correction_dims(params) : detail::RopeCorrectionDims{};
  std::vector<float> cos_sin(params.n_rot);
  for (size_t t = 0; t < positions.size(); ++t) {
    detail::rope_cos_sin(params, corr, theta_scale, positions[t], cos_sin.data());
    for (int64_t h = 0; h < n_heads; ++h) {
      detail::rope_rotate_head(x + (t * n_heads + h) * head_dim, cos_sin.data(), params);
    }
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kLimit = 7.0f, kAlpha = 1.702f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = std::min(gate[i], kLimit);
    const float u = std::clamp(up[i], -kLimit, kLimit);
    out[i] = g / (1.0f + std::exp(-kAlpha * g)) * (u + 1.0f);
  }
}

namespace {

// GELU (tanh form) of every f16 value, rounded to f16: llama.cpp's CPU path looks its GELU up in
// such a table. The inner 1 + a h^2 is fused as GCC fuses ggml's expression; unfused, ~1 in 10^4
// table entries differ in the last bit.
const std::vector<uint16_t>& gelu_f16_table() {
  static const std::vector<uint16_t> table = [] {
    constexpr float kSqrt2OverPi = 0.7978845608f;
    std::vector<uint16_t> values(size_t(1) << 16);
    for (size_t bits = 0; bits < values.size(); ++bits) {
      const float h = fp16_to_fp32(static_cast<uint16_t>(bits));
      const float inner = std::fma(0.044715f * h, h, 1.0f);
      values[bits] = fp32_to_fp16(0.5f * h * (1.0f + std::tanh(kSqrt2OverPi * h * inner)));
    }
    return values;
  }();
  return table;
}

}  // namespace

// note: as llama.cpp's CPU path computes it: the gate rounded to f16 and looked up in the GELU
// table; exact limits outside (-10, 10).
void geglu(const float* gate, const float* up, float* out, int64_t n) {
  const uint16_t* table = gelu_f16_table().data();
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    float gelu = g;
    if (g <= -10.0f) {
      gelu = 0.0f;
    } else if (g < 10.0f) {
      gelu = fp16_to_fp32(table[fp32_to_fp16(g)]);
    }
    out[i] = gelu * up[i];
  }
}

void softmax(float* x, int64_t n_rows, int64_t n) {
  for (int64_t r = 0; r < n_rows; ++r) {
    float* row = x + r * n;
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::max(max, row[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      row[i] = std::exp(row[i] - max);
      sum += static_cast<double>(row[i]);
    }
    const float inverse = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) row[i] *= inverse;
  }
}

void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * n;
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i) {
      if (row[i] > row[best]) best = i;
    }
    out[r] = static_cast<int32_t>(best);
  }
}

}  // namespace reference
}  // namespace so::cpu
