// Internal to backend/cpu: AVX2/FMA versions of the small ops (ops_avx2.cpp). Call only
// where cpu_features() reports AVX2, FMA and F16C. Same contracts as the reference versions.
#pragma once

#include <cstdint>
#include <span>

#include "backend/cpu/kernels.h"

namespace so::cpu::detail {

void rmsnorm_avx2(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out);
void rope_avx2(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
               const RopeParams& params);
void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n);
void softmax_avx2(float* x, int64_t n_rows, int64_t n);
void argmax_avx2(const float* x, int64_t n_rows, int64_t n, int32_t* out);

}  // namespace so::cpu::detail
