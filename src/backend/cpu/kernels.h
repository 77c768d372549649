// CPU compute kernels: the op set of the CPU backend.
//
// Every op has a scalar reference (kernels_reference.cpp) that stays; vectorized versions
// (AVX2/FMA, chosen at run time) are tested against it. Layouts are row-major and
// contiguous; shapes are given outer to inner.
//
// Batch invariance (ARCHITECTURE.md section 6): output row i depends only on input row i
// and the weights. Never on n_rows, on the thread count or on which tile computed it, so a
// sequence's logits are bit-identical alone and inside any batch. Kernels that tile rows
// must give each output element the same sequence of floating-point operations in the
// tile path and in the remainder path.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/thread_pool.h"
#include "backend/ops.h"
#include "tensor/tensor.h"

namespace so::cpu {

enum class Isa { kScalar, kAvx2 };

// Best ISA this CPU runs; SPECOFFLOAD_ISA=scalar|avx2 forces one (tests use it).
Isa detect_isa();
std::string_view isa_name(Isa isa);

// Rope parameters are backend-level plain data (backend/ops.h).
using so::RopeParams;
using so::RopeStyle;

// Scratch for quantized activations; one per thread of control that calls matmul.
// One weight against its own rows: an expert and the tokens routed to it.
struct MatmulGroup {
  TensorView weight;
  const float* x;  // (n_rows, n_in)
  int64_t n_rows;
  float* y;  // (n_rows, n_out)
};

struct MatmulWorkspace {
  AlignedBuffer packed_activations;
  // matmul_groups: each group's first packed row, and the output tasks.
  struct Task {
    size_t group;
    int64_t row_begin, row_end, col_begin, col_end;
  };
  std::vector<int64_t> group_first_row;
  std::vector<Task> tasks;
};

class Kernels {
 public:
  Kernels(ThreadPool& pool, Isa isa) : pool_(pool), isa_(isa) {}
  Isa isa() const { return isa_; }
  ThreadPool& pool() const { return pool_; }

  // y (n_rows, n_out) = x (n_rows, n_in) * W^T; W is (n_out, n_in) of any weight dtype.
  // Quantized weights use integer dot products against activations quantized per row
  // (Q8_0 for Q4_0/Q8_0, Q8_1 for Q4_1, Q8_K for Q4_K/Q6_K), as llama.cpp does.
  void matmul(MatmulWorkspace& workspace, const TensorView& weight, const float* x, int64_t n_rows, float* y) const;

  // Several weights of the same n_in and dtype against one x (Q/K/V, gate/up): x is
  // converted once and all outputs share one parallel dispatch.
  void matmul_many(MatmulWorkspace& workspace, std::span<const TensorView> weights, const float* x, int64_t n_rows,
                   std::span<float* const> ys) const;

  // Several (weight, rows) products of one dtype and n_in in two dispatches (every group's activations, then
  // every output), so MoE experts share the pool instead of taking turns, small groups (decode) included. Each y
  // is what matmul(weight, x, n_rows) gives.
  void matmul_groups(MatmulWorkspace& workspace, std::span<const MatmulGroup> groups) const;

  // out (n_tokens, dim) = rows `tokens` of table (n_vocab, dim) as f32.
  void embedding(const TensorView& table, std::span<const int32_t> tokens, float* out) const;

  // out = x / sqrt(mean(x^2) + eps) * weight, per row of dim; weight (dim) f32. In place ok.
  void rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) const;

  // x (n_tokens, n_heads, head_dim), rotated in place; positions (n_tokens).
  void rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
            const RopeParams& params) const;

  // x (n_rows, dim) += bias (dim)
  void add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim) const;
  // out (n) = a + b; out may alias a or b
  void add(const float* a, const float* b, float* out, int64_t n) const;
  // out (n) = silu(gate) * up; out may alias gate
  void swiglu(const float* gate, const float* up, float* out, int64_t n) const;
  // out (n) = gelu(gate) * up, GELU's tanh form; out may alias gate
  void geglu(const float* gate, const float* up, float* out, int64_t n) const;
  // x (n) *= factor
  void scale(float* x, float factor, int64_t n) const;
  // gpt-oss's clamped SwiGLU: g = min(gate, 7); out = g * sigmoid(1.702 g) * (clamp(up, -7, 7) + 1)
  void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n) const;
  // x (n_rows, n) softmax per row, in place
  void softmax(float* x, int64_t n_rows, int64_t n) const;
  // index of the largest value per row of x (n_rows, n); ties go to the lowest index
  void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) const;

 private:
  ThreadPool& pool_;
  Isa isa_;
};

// Scalar reference versions, single-threaded; the ground truth for tests.
namespace reference {
void matmul(const TensorView& weight, const float* x, int64_t n_rows, float* y);
void embedding(const TensorView& table, std::span<const int32_t> tokens, float* out);
void rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out);
void rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim, const RopeParams& params);
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void geglu(const float* gate, const float* up, float* out, int64_t n);
void swiglu_clamped(const float* gate, const float* up, float* out, int64_t n);
void softmax(float* x, int64_t n_rows, int64_t n);
void argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out);
}  // namespace reference

}  // namespace so::cpu
