// MoE routing shared by the backends: the experts each token goes to, and their weights.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace so {

// Logistic function in place (DeepSeek-V3's expert scores), as llama.cpp computes it.
void sigmoid_in_place(float* x, int64_t n);

// scores (n_tokens, n_experts): softmax or sigmoid of the router logits. Writes
// selected/weights (n_tokens, moe.n_experts_used): the top-k by score plus the selection bias
// (ties to the lower id), within the best groups when the experts are grouped (a group's
// worth: its two best, or its best with moe.group_by_best); weights are the unbiased scores,
// renormalized to sum 1 when moe.normalize_weights, times moe.weights_scale.
void route_top_k(const float* scores, int64_t n_tokens, int n_experts, const MoeWeights& moe, int32_t* selected,
                 float* weights);

// The (token, slot) pairs of a routed step grouped by expert, each group in slot order: expert
// e's rows are tokens[offsets[e] .. offsets[e + 1]), and slots[i] = token * n_used + k is where
// the k-th choice of that token writes its output. One counting pass over the choices.
struct ExpertGroups {
  std::vector<int64_t> offsets;  // (n_experts + 1)
  std::vector<int32_t> tokens;   // (n_tokens * n_used)
  std::vector<int32_t> slots;    // (n_tokens * n_used)

  int64_t size(int expert) const { return offsets[size_t(expert) + 1] - offsets[size_t(expert)]; }
};
void group_by_expert(const int32_t* selected, int64_t n_tokens, int n_used, int n_experts, ExpertGroups& groups);

}  // namespace so
