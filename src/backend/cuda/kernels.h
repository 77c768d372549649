// Launchers of the CUDA kernels (implemented in the .cu files beside). Pointers are device
// memory; every launcher enqueues on `stream` and returns at once.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "backend/ops.h"
#include "tensor/dtype.h"

namespace so::cuda {

// Weight dtypes with device kernels: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q8_0, MXFP4, Q2_K..Q6_K.
bool supports_weight(DType dtype);

// y (n_rows, n_out) = x (n_rows, n_in) * W^T for F32/F16/BF16 W, f32 math; for small n_rows.
void matvec(DType dtype, const void* weight, int64_t n_out, int64_t n_in, const float* x, int64_t n_rows, float* y,
            cudaStream_t stream);

// Activations quantized per row to 8-bit blocks, for quantized weights (matmul_q8.cu).
struct Q8Activations {
  int8_t* q;       // (n_rows * n_in)
  float* d;        // per 32 elements (Q8_K: at every 8th entry, one per 256)
  float* s;        // per 32 elements: d * sum(q) (Q8_1)
  int32_t* bsums;  // per 16 elements (Q8_K)
};
// Whether `weight` is computed against Q8 activations (the quantized weight dtypes).
bool uses_q8_activations(DType weight);
size_t q8_activation_bytes(int64_t n_rows, int64_t n_in);
Q8Activations q8_activations_in(void* memory, int64_t n_rows, int64_t n_in);
// x (n_rows, n_in) -> the activation blocks `weight` dtype pairs with.
void quantize_activations(DType weight, const float* x, int64_t n_rows, int64_t n_in, const Q8Activations& a,
                          cudaStream_t stream);
// y (n_rows, n_out) = W * a, per-block integer dot products; any batch size.
void matvec_q8(DType weight_dtype, const void* weight, int64_t n_out, int64_t n_in, const Q8Activations& a,
               int64_t n_rows, float* y, cudaStream_t stream);
// f32 -> f16 or bf16 (n elements).
void convert_f32(const float* x, int64_t n, bool to_bf16, void* out, cudaStream_t stream);

void rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out,
             cudaStream_t stream);
// x (n_tokens, n_heads, head_dim) in place; freq_factors (n_rot/2) or null.
void rope(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
          const RopeParams& params, const float* freq_factors, cudaStream_t stream);
void add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim, cudaStream_t stream);
void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);
void swiglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);
void geglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);
void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);
void scale(float* x, float factor, int64_t n, cudaStream_t stream);
void gather_rows(const float* x, const int32_t* indices, int64_t n, int64_t dim, float* out, cudaStream_t stream);
void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out, cudaStream_t stream);
// out (n_tokens, n_used, dim) -> combined (n_tokens, dim): sum over k of weights[t, k] * out[t, k].
void moe_combine(const float* expert_outputs, const float* weights, int64_t n_tokens, int n_used, int64_t dim,
                 float* out, cudaStream_t stream);
// slots[i] of out (n_tokens * n_used, dim) = x[i] (n, dim): scatter an expert's outputs.
void scatter_rows(const float* x, const int32_t* slots, int64_t n, int64_t dim, float* out, cudaStream_t stream);

// Per token of a step: the positions it sees (0 .. visible-1) and where its row's page
// table starts in the flattened page array.
struct TokenKv {
  int32_t visible;    // kv_start + index in row + 1
  int32_t page_base;  // index of the row's first page pointer
};

void kv_store(const KvGeometry& geometry, int layer, const TokenKv* tokens, const uint8_t* const* pages,
              int64_t n_tokens, const float* k, const float* v, cudaStream_t stream);
void attention(const KvGeometry& geometry, int layer, const TokenKv* tokens, const uint8_t* const* pages,
               int64_t n_tokens, const AttentionParams& params, const float* q, float* out, cudaStream_t stream);

}  // namespace so::cuda
