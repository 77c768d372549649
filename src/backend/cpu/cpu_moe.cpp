// The MoE FFN on the CPU: route every token, group tokens by expert, run every expert's FFN over
// its group (each matrix of all experts in one grouped dispatch), and combine the outputs in each
// token's top-k order.
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

  // Every expert over the tokens routed to it, all experts in one grouped matmul per matrix: rows in expert
  // order (row i is the choice in slot groups.slots[i]).
  group_by_expert(s.selected.data(), n_tokens, n_used, n_experts, s.groups);
  const int64_t n_choices = n_tokens * n_used;
  s.gathered.resize(size_t(n_choices) * dim * sizeof(float));
  s.gate.resize(size_t(n_choices) * ffn_dim * sizeof(float));
  s.up.resize(size_t(n_choices) * ffn_dim * sizeof(float));
  s.down.resize(size_t(n_choices) * dim * sizeof(float));
  float *gathered = s.gathered.as<float>(), *gate = s.gate.as<float>(), *up = s.up.as<float>();
  float* down = s.down.as<float>();
  gather_rows(x, s.groups.tokens, dim, gathered);
  s.matmuls.clear();
  for (int e = 0; e < n_experts; ++e) {
    const int64_t first = s.groups.offsets[size_t(e)], n_group = s.groups.size(e);
    if (n_group == 0) continue;
    s.matmuls.push_back({weights.gate[e], gathered + first * dim, n_group, gate + first * ffn_dim});
    s.matmuls.push_back({weights.up[e], gathered + first * dim, n_group, up + first * ffn_dim});
  }
  kernels_.matmul_groups(matmul_workspace_, s.matmuls);
  if (weights.gate_bias) {
    for (int e = 0; e < n_experts; ++e) {
      const int64_t first = s.groups.offsets[size_t(e)], n_group = s.groups.size(e);
      if (n_group == 0) continue;
      kernels_.add_bias(gate + first * ffn_dim, weights.gate_bias + int64_t(e) * ffn_dim, n_group, ffn_dim);
      kernels_.add_bias(up + first * ffn_dim, weights.up_bias + int64_t(e) * ffn_dim, n_group, ffn_dim);
    }
  }
  if (weights.clamped_swiglu) {
    kernels_.swiglu_clamped(gate, up, gate, n_choices * ffn_dim);
  } else {
    kernels_.swiglu(gate, up, gate, n_choices * ffn_dim);
  }
  s.matmuls.clear();
  for (int e = 0; e < n_experts; ++e) {
    const int64_t first = s.groups.offsets[size_t(e)], n_group = s.groups.size(e);
    if (n_group > 0) s.matmuls.push_back({weights.down[e], gate + first * ffn_dim, n_group, down + first * dim});
  }
  kernels_.matmul_groups(matmul_workspace_, s.matmuls);
  if (weights.down_bias) {
    for (int e = 0; e < n_experts; ++e) {
      const int64_t first = s.groups.offsets[size_t(e)], n_group = s.groups.size(e);
      if (n_group > 0) kernels_.add_bias(down + first * dim, weights.down_bias + int64_t(e) * dim, n_group, dim);
    }
  }
  // The row of each slot, for the combine.
  s.row_of_slot.resize(size_t(n_choices));
  for (int64_t i = 0; i < n_choices; ++i) s.row_of_slot[size_t(s.groups.slots[size_t(i)])] = i;

  // Combine: out = sum_k w_k * y_k, in top-k order, each product rounded before the add.
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* destination = out + t * dim;
    for (int k = 0; k < n_used; ++k) {
      const float w = s.weights[t * n_used + k];
      const float* y = down + s.row_of_slot[size_t(t * n_used + k)] * dim;
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
