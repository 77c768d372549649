// AVX2/FMA versions of the small ops. (First cut: the reference; vectorized next.)
#include "backend/cpu/ops_avx2.h"

namespace so::cpu::detail {

void rmsnorm_avx2(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) {
  reference::rmsnorm(x, weight, eps, n_rows, dim, out);
}
void rope_avx2(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
               const RopeParams& params) {
  reference::rope(x, positions, n_heads, head_dim, params);
}
void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n) { reference::swiglu(gate, up, out, n); }
void softmax_avx2(float* x, int64_t n_rows, int64_t n) { reference::softmax(x, n_rows, n); }
void argmax_avx2(const float* x, int64_t n_rows, int64_t n, int32_t* out) { reference::argmax(x, n_rows, n, out); }

}  // namespace so::cpu::detail
