// The AVX2 matmul kernel set: routes each weight dtype to its tile kernels (Q4_0, Q4_1,
// Q8_0, Q5_0, MXFP4 in matmul_q32_avx2.h; K-quants and float weights in their own files).
#include "backend/cpu/matmul_driver.h"
#include "backend/cpu/matmul_internal.h"
#include "backend/cpu/matmul_kquants_avx2.h"
#include "backend/cpu/matmul_q32_avx2.h"
#include "base/check.h"
#include "base/cpu_features.h"

namespace so::cpu::detail {
namespace avx2 {

void compute_q32_plain(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_q32<false>(args, row_begin, row_end, col_begin, col_end);
}

namespace {

template <IntegerDot kDot>
void compute(const TensorView& weight, const uint8_t* activations, int64_t activation_stride, int64_t row_begin,
             int64_t row_end, int64_t col_begin, int64_t col_end, float* y) {
  const MatmulArgs args{&weight, activations, activation_stride, y};
  switch (weight.dtype) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ8_0:
    case DType::kQ5_0:
    case DType::kMXFP4:
      if constexpr (kDot == IntegerDot::kAvx512Vnni)
        return compute_q32_avx512(args, row_begin, row_end, col_begin, col_end);
      if constexpr (kDot == IntegerDot::kAvxVnni) return compute_q32_vnni(args, row_begin, row_end, col_begin, col_end);
      return compute_q32_plain(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ5_K:
      if constexpr (kDot == IntegerDot::kAvx512Vnni)
        return compute_q5_k_avx512(args, row_begin, row_end, col_begin, col_end);
      return compute_q5_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ4_K:
      if constexpr (kDot == IntegerDot::kAvx512Vnni)
        return compute_q4_k_avx512(args, row_begin, row_end, col_begin, col_end);
      return compute_q4_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ6_K:
      return compute_q6_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ2_K:
      if constexpr (kDot == IntegerDot::kAvx512Vnni)
        return compute_q2_k_avx512(args, row_begin, row_end, col_begin, col_end);
      return compute_q2_k(args, row_begin, row_end, col_begin, col_end);
    case DType::kQ3_K:
      if constexpr (kDot == IntegerDot::kAvx512Vnni)
        return compute_q3_k_avx512(args, row_begin, row_end, col_begin, col_end);
      return compute_q3_k(args, row_begin, row_end, col_begin, col_end);
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

IntegerDot best_integer_dot() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512() && f.avx512vnni) return IntegerDot::kAvx512Vnni;
  return f.avx_vnni ? IntegerDot::kAvxVnni : IntegerDot::kAvx2;
}

const MatmulKernelSet& avx2_matmul_kernels(IntegerDot dot) {
  using avx2::activation_row_bytes, avx2::quantize_activation_row;
  static const MatmulKernelSet plain{activation_row_bytes, quantize_activation_row, avx2::compute<IntegerDot::kAvx2>};
  static const MatmulKernelSet vnni{activation_row_bytes, quantize_activation_row, avx2::compute<IntegerDot::kAvxVnni>};
  static const MatmulKernelSet avx512{activation_row_bytes, quantize_activation_row,
                                      avx2::compute<IntegerDot::kAvx512Vnni>};
  switch (dot) {
    case IntegerDot::kAvx512Vnni:
      return avx512;
    case IntegerDot::kAvxVnni:
      return vnni;
    default:
      return plain;
  }
}

}  // namespace so::cpu::detail
