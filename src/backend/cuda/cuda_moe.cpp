// The MoE FFN on the device. Routing (softmax and top-k over a few experts per token) runs
// on the host from the router's logits; each expert then runs once over its group of
// tokens, and the outputs combine in each token's top-k order as on the CPU.
#include "backend/cpu/kernels.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/moe_routing.h"

namespace so {

void CudaBackend::moe_ffn(const MoeWeights& weights, const float* x, int64_t n_tokens, int64_t dim, int64_t ffn_dim,
                          float* out) {
  const int n_experts = static_cast<int>(weights.gate.size());
  const int n_used = weights.n_experts_used;
  if (n_tokens == 0) return;

  auto* router = static_cast<float*>(scratch(kMoeRouter, size_t(n_tokens * n_experts) * sizeof(float)));
  matmul(weights.router, x, n_tokens, router);
  if (weights.router_bias) cuda::add_bias(router, weights.router_bias, n_tokens, n_experts, stream_);
  router_logits_.resize(size_t(n_tokens * n_experts));
  copy_to_host(router_logits_.data(), router, router_logits_.size() * sizeof(float));
  if (weights.sigmoid_scores) {
    sigmoid_in_place(router_logits_.data(), n_tokens * n_experts);
  } else {
    cpu::reference::softmax(router_logits_.data(), n_tokens, n_experts);
  }
  selected_.resize(size_t(n_tokens * n_used));
  route_weights_.resize(size_t(n_tokens * n_used));
  route_top_k(router_logits_.data(), n_tokens, n_experts, weights, selected_.data(), route_weights_.data());

  auto* expert_outputs = static_cast<float*>(scratch(kMoeExpertOutputs, size_t(n_tokens * n_used * dim) * sizeof(float)));
  // Every group's tokens and output slots go up in one copy each (not two per expert).
  group_by_expert(selected_.data(), n_tokens, n_used, n_experts, groups_);
  const size_t choice_bytes = groups_.tokens.size() * sizeof(int32_t);
  const auto* tokens = static_cast<const int32_t*>(upload(Upload::kIndices, groups_.tokens.data(), choice_bytes));
  const auto* slots = static_cast<const int32_t*>(upload(Upload::kSlots, groups_.slots.data(), choice_bytes));
  for (int e = 0; e < n_experts; ++e) {
    const int64_t n_group = groups_.size(e);
    if (n_group == 0) continue;
    const int64_t first = groups_.offsets[size_t(e)];
    auto* gathered = static_cast<float*>(scratch(kMoeGathered, size_t(n_group * dim) * sizeof(float)));
    auto* gate = static_cast<float*>(scratch(kMoeGate, size_t(n_group * ffn_dim) * sizeof(float)));
    auto* up = static_cast<float*>(scratch(kMoeUp, size_t(n_group * ffn_dim) * sizeof(float)));
    auto* down = static_cast<float*>(scratch(kMoeDown, size_t(n_group * dim) * sizeof(float)));
    cuda::gather_rows(x, tokens + first, n_group, dim, gathered, stream_);
    matmul(weights.gate[size_t(e)], gathered, n_group, gate);
    matmul(weights.up[size_t(e)], gathered, n_group, up);
    if (weights.gate_bias) {
      cuda::add_bias(gate, weights.gate_bias + int64_t(e) * ffn_dim, n_group, ffn_dim, stream_);
      cuda::add_bias(up, weights.up_bias + int64_t(e) * ffn_dim, n_group, ffn_dim, stream_);
    }
    if (weights.clamped_swiglu) {
      cuda::swiglu_clamped(gate, up, gate, n_group * ffn_dim, stream_);
    } else {
      cuda::swiglu(gate, up, gate, n_group * ffn_dim, stream_);
    }
    matmul(weights.down[size_t(e)], gate, n_group, down);
    if (weights.down_bias) cuda::add_bias(down, weights.down_bias + int64_t(e) * dim, n_group, dim, stream_);
    cuda::scatter_rows(down, slots + first, n_group, dim, expert_outputs, stream_);
  }
  const auto* route_weights = static_cast<const float*>(
      upload(Upload::kMoeWeights, route_weights_.data(), route_weights_.size() * sizeof(float)));
  cuda::moe_combine(expert_outputs, route_weights, n_tokens, n_used, dim, out, stream_);
}

}  // namespace so
