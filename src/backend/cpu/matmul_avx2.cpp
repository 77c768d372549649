// AVX2/FMA matmul kernels. (First cut: the reference kernels; vectorized next.)
#include "backend/cpu/matmul_driver.h"

namespace so::cpu::detail {

const MatmulKernelSet& avx2_matmul_kernels() { return reference_matmul_kernels(); }

}  // namespace so::cpu::detail
