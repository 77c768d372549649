// Internal to backend/cpu: rope pieces shared by the reference and the vectorized rope.
#pragma once

#include <cstdint>

#include "backend/cpu/kernels.h"

namespace so::cpu::detail {

// YaRN correction range in rotated-pair units: pairs below `low` keep extrapolated angles,
// pairs above `high` take interpolated ones, a linear ramp in between.
struct RopeCorrectionDims {
  float low = 0.0f;
  float high = 0.0f;
};
RopeCorrectionDims rope_correction_dims(const RopeParams& params);

// cos_sin (n_rot/2, 2): cos and sin of every rotated pair's angle at `position`, times the
// YaRN magnitude scale. theta_scale = theta_base^(-2/n_rot).
void rope_cos_sin(const RopeParams& params, const RopeCorrectionDims& corr, float theta_scale, int32_t position,
                  float* cos_sin);
// head (head_dim) rotated in place by the angles of cos_sin.
void rope_rotate_head(float* head, const float* cos_sin, const RopeParams& params);
void check_rope_params(const RopeParams& params, int64_t head_dim);

}  // namespace so::cpu::detail
