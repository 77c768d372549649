#include "backend/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "base/check.h"

namespace so {

void sigmoid_in_place(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

namespace {

// The ids of the k largest values (ties to the lower id), best first.
void top_k(const float* values, int n, int k, std::vector<int32_t>& order) {
  order.resize(size_t(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [values](int32_t a, int32_t b) { return values[a] > values[b] || (values[a] == values[b] && a < b); });
}

}  // namespace

void route_top_k(const float* scores, int64_t n_tokens, int n_experts, const MoeWeights& moe, int32_t* selected,
                 float* weights) {
  const int n_used = moe.n_experts_used;
  const bool grouped = moe.n_groups > 1;
  const int group_size = grouped ? n_experts / moe.n_groups : n_experts;
  std::vector<float> choice(static_cast<size_t>(n_experts));
  std::vector<float> group_scores(static_cast<size_t>(std::max(moe.n_groups, 1)));
  std::vector<int32_t> order, group_order, in_group;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* p = scores + t * n_experts;
    for (int e = 0; e < n_experts; ++e) choice[size_t(e)] = p[e] + (moe.selection_bias ? moe.selection_bias[e] : 0.0f);
    if (grouped) {
      for (int g = 0; g < moe.n_groups; ++g) {
        const float* group = choice.data() + int64_t(g) * group_size;
        top_k(group, group_size, std::min(2, group_size), in_group);
        const bool pair = group_size > 1 && !moe.group_by_best;
        group_scores[size_t(g)] = group[in_group[0]] + (pair ? group[in_group[1]] : 0.0f);
      }
      top_k(group_scores.data(), moe.n_groups, moe.n_groups_used, group_order);
      for (size_t rank = size_t(moe.n_groups_used); rank < group_order.size(); ++rank) {
        float* group = choice.data() + int64_t(group_order[rank]) * group_size;
        std::fill(group, group + group_size, -std::numeric_limits<float>::infinity());
      }
    }
    top_k(choice.data(), n_experts, n_used, order);
    double sum = 0.0;
    for (int k = 0; k < n_used; ++k) {
      selected[t * n_used + k] = order[size_t(k)];
      weights[t * n_used + k] = p[order[size_t(k)]];
      sum += p[order[size_t(k)]];
    }
    // note: llama.cpp floors the sum at 2^-14 so that tiny sigmoid scores cannot blow up.
    const float divisor = moe.normalize_weights ? std::max(static_cast<float>(sum), 6.103515625e-5f) : 1.0f;
    // note: dividing or scaling by 1 is exact, so no branch for the families that do neither
    for (int k = 0; k < n_used; ++k) weights[t * n_used + k] = weights[t * n_used + k] / divisor * moe.weights_scale;
  }
}

void group_by_expert(const int32_t* selected, int64_t n_tokens, int n_used, int n_experts, ExpertGroups& groups) {
  const int64_t n = n_tokens * n_used;
  groups.offsets.assign(size_t(n_experts) + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    SO_CHECK(selected[i] >= 0 && selected[i] < n_experts, "routed to expert ", selected[i], " of ", n_experts);
    ++groups.offsets[size_t(selected[i]) + 1];
  }
  for (int e = 0; e < n_experts; ++e) groups.offsets[size_t(e) + 1] += groups.offsets[size_t(e)];
  groups.tokens.resize(size_t(n));
  groups.slots.resize(size_t(n));
  std::vector<int64_t> next(groups.offsets.begin(), groups.offsets.end() - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = next[size_t(selected[i])]++;
    groups.tokens[size_t(at)] = static_cast<int32_t>(i / n_used);
    groups.slots[size_t(at)] = static_cast<int32_t>(i);
  }
}

}  // namespace so
