// Kernels: picks the ISA's version of each op and spreads the work over the thread pool.
#include "backend/cpu/kernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "backend/cpu/matmul_driver.h"
#include "backend/cpu/ops_avx2.h"
#include "base/check.h"
#include "base/cpu_features.h"
#include "base/log.h"

namespace so::cpu {
namespace {

bool cpu_has_avx2() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c;
}

// Elements per task for elementwise ops: below this a thread wake-up costs more than it saves.
constexpr int64_t kElementwiseGrain = 16384;

// Runs fn(begin, end) over [0, n) in pieces of at least `grain`, each a multiple of 16 long.
template <typename Fn>
void parallel_ranges(ThreadPool& pool, int64_t n, int64_t grain, Fn&& fn) {
  const int64_t max_tasks = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  const int64_t n_tasks = std::min<int64_t>(pool.n_threads(), max_tasks);
  int64_t piece = (n + n_tasks - 1) / n_tasks;
  piece = (piece + 15) / 16 * 16;
  pool.parallel_for((n + piece - 1) / piece,
                    [&](int64_t task, int) { fn(task * piece, std::min(n, (task + 1) * piece)); });
}

}  // namespace

Isa detect_isa() {
  const Isa best = cpu_has_avx2() ? Isa::kAvx2 : Isa::kScalar;
  const char* forced = std::getenv("SPECOFFLOAD_ISA");
  if (forced == nullptr || *forced == '\0') return best;
  const std::string_view name(forced);
  if (name == "scalar") return Isa::kScalar;
  if (name == "avx2") {
    if (best == Isa::kAvx2) return Isa::kAvx2;
    SO_LOG(Warn, "SPECOFFLOAD_ISA=avx2 but this CPU lacks AVX2/FMA/F16C; using scalar kernels");
    return Isa::kScalar;
  }
  SO_LOG(Warn, "SPECOFFLOAD_ISA=", name, " is not one of scalar, avx2; using ", isa_name(best));
  return best;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
  }
  return "unknown";
}

void Kernels::matmul(MatmulWorkspace& workspace, const TensorView& weight, const float* x, int64_t n_rows,
                     float* y) const {
  float* const ys[1] = {y};
  matmul_many(workspace, std::span<const TensorView>(&weight, 1), x, n_rows, ys);
}

void Kernels::matmul_many(MatmulWorkspace& workspace, std::span<const TensorView> weights, const float* x,
                          int64_t n_rows, std::span<float* const> ys) const {
  const detail::MatmulKernelSet& kernels =
      isa_ == Isa::kAvx2 ? detail::avx2_matmul_kernels(detail::best_integer_dot()) : detail::reference_matmul_kernels();
  detail::run_matmul(pool_, kernels, workspace, weights, x, n_rows, ys);
}

void Kernels::matmul_groups(MatmulWorkspace& workspace, std::span<const MatmulGroup> groups) const {
  const detail::MatmulKernelSet& kernels =
      isa_ == Isa::kAvx2 ? detail::avx2_matmul_kernels(detail::best_integer_dot()) : detail::reference_matmul_kernels();
  detail::run_matmul_groups(pool_, kernels, workspace, groups);
}

void Kernels::embedding(const TensorView& table, std::span<const int32_t> tokens, float* out) const {
  const int64_t dim = table.shape.inner();
  const int64_t n_tokens = static_cast<int64_t>(tokens.size());
  parallel_ranges(pool_, n_tokens, std::max<int64_t>(1, kElementwiseGrain / dim), [&](int64_t begin, int64_t end) {
    reference::embedding(table, tokens.subspan(begin, end - begin), out + begin * dim);
  });
}

void Kernels::rmsnorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* out) const {
  parallel_ranges(pool_, n_rows, std::max<int64_t>(1, kElementwiseGrain / dim), [&](int64_t begin, int64_t end) {
    if (isa_ == Isa::kAvx2) {
      detail::rmsnorm_avx2(x + begin * dim, weight, eps, end - begin, dim, out + begin * dim);
    } else {
      reference::rmsnorm(x + begin * dim, weight, eps, end - begin, dim, out + begin * dim);
    }
  });
}

void Kernels::rope(float* x, std::span<const int32_t> positions, int64_t n_heads, int64_t head_dim,
                   const RopeParams& params) const {
  const int64_t n_tokens = static_cast<int64_t>(positions.size());
  const int64_t row = n_heads * head_dim;
  parallel_ranges(pool_, n_tokens, std::max<int64_t>(1, kElementwiseGrain / 4 / row), [&](int64_t begin, int64_t end) {
    if (isa_ == Isa::kAvx2) {
      detail::rope_avx2(x + begin * row, positions.subspan(begin, end - begin), n_heads, head_dim, params);
    } else {
      reference::rope(x + begin * row, positions.subspan(begin, end - begin), n_heads, head_dim, params);
    }
  });
}

void Kernels::add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim) const {
  parallel_ranges(pool_, n_rows, std::max<int64_t>(1, kElementwiseGrain / dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = x + r * dim;
      for (int64_t i = 0; i < dim; ++i) row[i] += bias[i];
    }
  });
}

void Kernels::add(const float* a, const float* b, float* out, int64_t n) const {
  // note: a + b rounds the same in any vector width, so the compiler's vectorization of this
  // loop cannot break batch invariance.
  parallel_ranges(pool_, n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
  });
}

void Kernels::swiglu(const float* gate, const float* up, float* out, int64_t n) const {
  parallel_ranges(pool_, n, kElementwiseGrain / 4, [&](int64_t begin, int64_t end) {
    if (isa_ == Isa::kAvx2) {
      detail::swiglu_avx2(gate + begin, up + begin, out + begin, end - begin);
    } else {
      reference::swiglu(gate + begin, up + begin, out + begin, end - begin);
    }
  });
}

void Kernels::geglu(const float* gate, const float* up, float* out, int64_t n) const {
  parallel_ranges(pool_, n, kElementwiseGrain / 4, [&](int64_t begin, int64_t end) {
    reference::geglu(gate + begin, up + begin, out + begin, end - begin);
  });
}

void Kernels::swiglu_clamped(const float* gate, const float* up, float* out, int64_t n) const {
  parallel_ranges(pool_, n, kElementwiseGrain / 4, [&](int64_t begin, int64_t end) {
    reference::swiglu_clamped(gate + begin, up + begin, out + begin, end - begin);
  });
}

void Kernels::scale(float* x, float factor, int64_t n) const {
  parallel_ranges(pool_, n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= factor;
  });
}

void Kernels::softmax(float* x, int64_t n_rows, int64_t n) const {
  parallel_ranges(pool_, n_rows, std::max<int64_t>(1, kElementwiseGrain / 4 / n), [&](int64_t begin, int64_t end) {
    if (isa_ == Isa::kAvx2) {
      detail::softmax_avx2(x + begin * n, end - begin, n);
    } else {
      reference::softmax(x + begin * n, end - begin, n);
    }
  });
}

void Kernels::argmax(const float* x, int64_t n_rows, int64_t n, int32_t* out) const {
  parallel_ranges(pool_, n_rows, std::max<int64_t>(1, kElementwiseGrain / n), [&](int64_t begin, int64_t end) {
    if (isa_ == Isa::kAvx2) {
      detail::argmax_avx2(x + begin * n, end - begin, n, out + begin);
    } else {
      reference::argmax(x + begin * n, end - begin, n, out + begin);
    }
  });
}

}  // namespace so::cpu
