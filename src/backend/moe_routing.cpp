#include "backend/moe_routing.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace so {

void route_top_k(const float* probabilities, int64_t n_tokens, int n_experts, int n_used, bool normalize,
                 int32_t* selected, float* weights) {
  std::vector<int32_t> order(n_experts);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* p = probabilities + t * n_experts;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + n_used, order.end(),
                      [p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    double sum = 0.0;
    for (int k = 0; k < n_used; ++k) {
      selected[t * n_used + k] = order[k];
      weights[t * n_used + k] = p[order[k]];
      sum += p[order[k]];
    }
    if (normalize) {
      for (int k = 0; k < n_used; ++k) weights[t * n_used + k] /= static_cast<float>(sum);
    }
  }
}

}  // namespace so
