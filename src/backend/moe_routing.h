// MoE routing shared by the backends: the experts each token goes to, and their weights.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace so {

// Logistic function in place (DeepSeek-V3's expert scores), as llama.cpp computes it.
void sigmoid_in_place(float* x, int64_t n);

// scores (n_tokens, n_experts): softmax or sigmoid of the router logits. Writes
// selected/weights (n_tokens, moe.n_experts_used): the top-k by score plus the selection bias
// (ties to the lower id), within the best groups when the experts are grouped (a group's
// worth: its two best, or its best with moe.group_by_best); weights are the unbiased scores,
// renormalized to sum 1 when
// moe.normalize_weights, times moe.weights_scale.
void route_top_k(const float* scores, int64_t n_tokens, int n_experts, const MoeWeights& moe, int32_t* selected,
                 float* weights);

}  // namespace so
