// The AVX2 matmul kernel set: routes each weight dtype to its tile kernels (Q4_0, Q4_1,
// Q8_0 in matmul_q32_avx2.h; K-quants and float weights in their own files).
#include "backend/cpu/matmul_driver.h"
#include "backend/cpu/matmul_internal.h"
#include "backend/cpu/matmul_q32_avx2.h"
#include "base/check.h"

namespace so::cpu::detail {
namespace avx2 {

void compute_q32_plain(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_q32<false>(args, row_begin, row_end, col_begin, col_end);
}

namespace {

template <bool kVnni>
void compute(const TensorView& weight, const uint8_t* activations, int64_t activation_stride, int64_t row_begin,
             int64_t row_end, int64_t col_begin, int64_t col_end, float* y) {
  const MatmulArgs args{&weight, activations, activation_stride, y};
  switch (weight.dtype) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ8_0:
      if constexpr (kVnni) return compute_q32_vnni(args, row_begin, row_end, col_begin, col_end);
      return compute_q32_plain(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ4_K:
      return compute_q4_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ6_K:
      return compute_q6_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return compute_float(args, row_begin, row_end, col_begin, col_end);
    default:
      SO_CHECK(false, "matmul: unsupported weight dtype ", dtype_name(weight.dtype));
  }
}

}  // namespace
}  // namespace avx2

const MatmulKernelSet& avx2_matmul_kernels(bool use_vnni) {
  static const MatmulKernelSet plain{avx2::activation_row_bytes, avx2::quantize_activation_row, avx2::compute<false>};
  static const MatmulKernelSet vnni{avx2::activation_row_bytes, avx2::quantize_activation_row, avx2::compute<true>};
  return use_vnni ? vnni : plain;
}

}  // namespace so::cpu::detail
