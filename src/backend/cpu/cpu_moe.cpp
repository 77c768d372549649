// The MoE FFN on the CPU: route every token, group tokens by expert, run each expert's
// FFN once over its group, and combine the outputs in each token's top-k order.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/moe_routing.h"

namespace so {

void CpuBackend::moe_ffn(const MoeWeights& weights, const float* x, int64_t n_tokens, int64_t dim, int64_t ffn_dim,
                         float* out) {
  ComputeGate::Scope turn(gate_);
  MoeScratch& s = moe_scratch_;
  const int n_experts = static_cast<int>(weights.gate.size());
  const int n_used = weights.n_experts_used;

  // Route: softmax (or sigmoid) scores, then the choice (backend/moe_routing.h).
  s.router_logits.resize(size_t(n_tokens) * n_experts * sizeof(float));
  float* probabilities = s.router_logits.as<float>();
  kernels_.matmul(matmul_workspace_, weights.router, x, n_tokens, probabilities);
  if (weights.router_bias) kernels_.add_bias(probabilities, weights.router_bias, n_tokens, n_experts);
  if (weights.sigmoid_scores) {
    sigmoid_in_place(probabilities, n_tokens * n_experts);
  } else {
    kernels_.softmax(probabilities, n_tokens, n_experts);
  }
  s.selected.resize(size_t(n_tokens) * n_used);
  s.weights.resize(size_t(n_tokens) * n_used);
  route_top_k(probabilities, n_tokens, n_experts, weights, s.selected.data(), s.weights.data());

  // Run each expert over the tokens routed to it.
  s.expert_outputs.resize(size_t(n_tokens) * n_used * dim * sizeof(float));
  float* expert_outputs = s.expert_outputs.as<float>();
  group_by_expert(s.selected.data(), n_tokens, n_used, n_experts, s.groups);
  for (int e = 0; e < n_experts; ++e) {
    const int64_t n_group = s.groups.size(e);
    if (n_group == 0) continue;
    const std::span<const int32_t> group_tokens(s.groups.tokens.data() + s.groups.offsets[size_t(e)], size_t(n_group));
    const int32_t* group_slots = s.groups.slots.data() + s.groups.offsets[size_t(e)];
    s.gathered.resize(size_t(n_group) * dim * sizeof(float));
    s.gate.resize(size_t(n_group) * ffn_dim * sizeof(float));
    s.up.resize(size_t(n_group) * ffn_dim * sizeof(float));
    s.down.resize(size_t(n_group) * dim * sizeof(float));
    gather_rows(x, group_tokens, dim, s.gathered.as<float>());
    const TensorView gate_up[] = {weights.gate[e], weights.up[e]};
    float* const gate_up_out[] = {s.gate.as<float>(), s.up.as<float>()};
    kernels_.matmul_many(matmul_workspace_, gate_up, s.gathered.as<float>(), n_group, gate_up_out);
    if (weights.gate_bias) {
      kernels_.add_bias(s.gate.as<float>(), weights.gate_bias + int64_t(e) * ffn_dim, n_group, ffn_dim);
      kernels_.add_bias(s.up.as<float>(), weights.up_bias + int64_t(e) * ffn_dim, n_group, ffn_dim);
    }
    if (weights.clamped_swiglu) {
      kernels_.swiglu_clamped(s.gate.as<float>(), s.up.as<float>(), s.gate.as<float>(), n_group * ffn_dim);
    } else {
      kernels_.swiglu(s.gate.as<float>(), s.up.as<float>(), s.gate.as<float>(), n_group * ffn_dim);
    }
    kernels_.matmul(matmul_workspace_, weights.down[e], s.gate.as<float>(), n_group, s.down.as<float>());
    if (weights.down_bias) kernels_.add_bias(s.down.as<float>(), weights.down_bias + int64_t(e) * dim, n_group, dim);
    for (int64_t i = 0; i < n_group; ++i) {
      std::copy_n(s.down.as<float>() + i * dim, dim, expert_outputs + int64_t(group_slots[i]) * dim);
    }
  }

  // Combine: out = sum_k w_k * y_k, in top-k order, each product rounded before the add.
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* destination = out + t * dim;
    for (int k = 0; k < n_used; ++k) {
      const float w = s.weights[t * n_used + k];
      const float* y = expert_outputs + (t * n_used + k) * dim;
      if (k == 0) {
        for (int64_t d = 0; d < dim; ++d) destination[d] = y[d] * w;
      } else {
        for (int64_t d = 0; d < dim; ++d) {
          const float product = y[d] * w;
          destination[d] = destination[d] + product;
        }
      }
    }
  }
}

}  // namespace so
