// Internal to backend/cpu: the pieces of matmul shared by the reference, the vectorized
// kernels and the dispatch in kernels.cpp. Not part of the backend seam.
#pragma once

#include <cmath>
#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/dtype.h"

namespace so::cpu::detail {

namespace {  // internal linkage: each file compiles it for its own ISA (fma inline or libm)

// sum plus one super-block of a K-quant row dot, from its exact integer totals (scaled: sum of
// scale * dot; mins: sum of min * activation sums, or 0): the weight's d and dmin first (the min
// term fused), then the activation's d, fused into the sum. The reference and every vectorized
// K-quant tile add blocks with this, so all give the same bits.
// note: llama.cpp's tiled CPU matmul (its prompt path, 8 rows and more) adds a block so; its
// one-row dots keep 8 float lanes, which no batch-invariant kernel can follow for both.
inline float add_kquant_block(float sum, int32_t scaled, int32_t mins, float wd, float wdmin, float xd) {
  return std::fma(std::fma(-wdmin, static_cast<float>(mins), static_cast<float>(scaled) * wd), xd, sum);
}

}  // namespace

// What a row of activations becomes before the dot products against a weight of this
// dtype: kQ8_0 (Q4_0, Q8_0 weights), kQ8_1 (Q4_1), kQ8_K (Q4_K, Q6_K) or kF32 (F32, F16,
// BF16: the activations stay f32).
DType activation_dtype(DType weight_dtype);

// Checks that the engine computes with this weight dtype and that n_in fits its blocks.
void check_matmul_weight(DType weight_dtype, int64_t n_in);

// --- reference layout: activation rows in GGUF block layout (BlockQ8_0 / Q8_1 / Q8_K, or f32)

// Bytes of one activation row of n_in elements in the reference layout.
int64_t reference_activation_row_bytes(DType weight_dtype, int64_t n_in);
// x (n_in) -> one activation row in the reference layout (tensor/quants.h quantizers).
void reference_quantize_activation_row(DType weight_dtype, const float* x, int64_t n_in, void* out);
// Dot product of one weight row (n_in, weight dtype) with one reference activation row.
float reference_dot(DType weight_dtype, const void* weight_row, const void* activation_row, int64_t n_in);
// Scalar dots of the reference (matmul_reference.cpp).
float dot_q5_0_q8_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t n_blocks);
float dot_mxfp4_q8_0(const BlockMXFP4* w, const BlockQ8_0* x, int64_t n_blocks);
float dot_q5_k_q8_k(const BlockQ5_K* w, const BlockQ8_K* x, int64_t n_blocks);

}  // namespace so::cpu::detail
