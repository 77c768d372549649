// MoE routing shared by the backends: top-k experts per token from softmax probabilities.
#pragma once

#include <cstdint>

namespace so {

// probabilities (n_tokens, n_experts), softmax per row. Writes selected/weights
// (n_tokens, n_used): the top-k by probability (ties to the lower id), renormalized to sum
// 1 when `normalize`.
void route_top_k(const float* probabilities, int64_t n_tokens, int n_experts, int n_used, bool normalize,
                 int32_t* selected, float* weights);

}  // namespace so
