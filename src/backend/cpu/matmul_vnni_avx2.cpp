// The Q4_0 / Q4_1 / Q8_0 tile kernels again, with AVX-VNNI: one vpdpbusd per block and
// output in place of maddubs + madd (and of the sign trick for Q8_0). Integer results are
// the same, so outputs are bit-identical to the plain AVX2 kernels.
// note: compiled for AVX-VNNI by the pragmas (no CMake rule needed); called only where
// cpu_features().avx_vnni.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avxvnni"))), apply_to = function)
#else
#pragma GCC target("avxvnni")
#endif

#include "backend/cpu/matmul_q32_avx2.h"

namespace so::cpu::detail::avx2 {

void compute_q32_vnni(const MatmulArgs& args, int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
  compute_q32<true>(args, row_begin, row_end, col_begin, col_end);
}

}  // namespace so::cpu::detail::avx2

#if defined(__clang__)
#pragma clang attribute pop
#endif
