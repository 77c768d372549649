// Internal to backend/cpu: how kernels.cpp drives an ISA's matmul kernels over the thread
// pool. Each ISA supplies a MatmulKernelSet; the driver quantizes activations (threaded
// over rows) and splits the outputs into tasks (column chunks x row blocks).
#pragma once

#include <cstdint>
#include <span>

#include "backend/cpu/kernels.h"

namespace so::cpu::detail {

struct MatmulKernelSet {
  // Bytes of one packed activation row, or 0 when the kernels read the f32 rows of x as is.
  int64_t (*activation_row_bytes)(DType weight_dtype, int64_t n_in);
  // x (n_in) -> one packed activation row.
  void (*quantize_row)(DType weight_dtype, const float* x, int64_t n_in, void* out);
  // y (n_rows, n_out) at rows [row_begin, row_end) and columns [col_begin, col_end), from the
  // packed activations (n_rows, activation_stride bytes) and the weight (n_out, n_in).
  // note: must give every output element the same floating-point operation sequence for any
  // range, so that results never depend on how the driver split the work.
  void (*compute)(const TensorView& weight, const uint8_t* activations, int64_t activation_stride, int64_t row_begin,
                  int64_t row_end, int64_t col_begin, int64_t col_end, float* y);
};

const MatmulKernelSet& reference_matmul_kernels();
// How the AVX2 kernel set computes the integer dot products of Q4_0 / Q4_1 / Q8_0 weights:
// maddubs + madd, AVX-VNNI, or AVX-512 with VNNI (two outputs per zmm). All three give
// bit-identical results; the best the CPU runs is picked.
enum class IntegerDot { kAvx2, kAvxVnni, kAvx512Vnni };
IntegerDot best_integer_dot();

// Only where cpu_features() has AVX2, FMA, F16C, and what `dot` needs.
const MatmulKernelSet& avx2_matmul_kernels(IntegerDot dot);

void run_matmul(ThreadPool& pool, const MatmulKernelSet& kernels, MatmulWorkspace& workspace,
                std::span<const TensorView> weights, const float* x, int64_t n_rows, std::span<float* const> ys);
void run_matmul_groups(ThreadPool& pool, const MatmulKernelSet& kernels, MatmulWorkspace& workspace,
                       std::span<const MatmulGroup> groups);

}  // namespace so::cpu::detail
