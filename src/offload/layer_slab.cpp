#include "offload/layer_slab.h"

#include <cstring>
#include <map>
#include <type_traits>

#include "base/check.h"

namespace so {
namespace {

constexpr int64_t kAlign = 64;

// Calls fn(pointer field, bytes) for every tensor of the layer that is present, in a fixed
// order. The field is a reference so the caller can read or repoint it.
template <typename Layer, typename Fn>
void visit_tensors(Layer& layer, const ModelConfig& c, Fn&& fn) {
  auto vector = [&](auto& field, int64_t count) {
    if (field != nullptr) fn(field, count * int64_t(sizeof(float)));
  };
  auto matrix = [&](auto& view) {
    if (view.data != nullptr) fn(view.data, view.bytes());
  };
  vector(layer.attn_norm, c.dim);
  matrix(layer.wq);
  matrix(layer.wk);
  matrix(layer.wv);
  matrix(layer.wo);
  vector(layer.bq, c.q_dim());
  vector(layer.bk, c.kv_dim());
  vector(layer.bv, c.kv_dim());
  vector(layer.q_norm, c.head_dim);
  vector(layer.k_norm, c.head_dim);
  vector(layer.post_attn_norm, c.dim);
  vector(layer.ffn_norm, c.dim);
  vector(layer.post_ffn_norm, c.dim);
  vector(layer.bo, c.dim);
  vector(layer.attn_sinks, c.n_heads);
  vector(layer.router_bias, c.n_experts);
  vector(layer.expert_gate_bias, int64_t(c.n_experts) * c.ffn_dim);
  vector(layer.expert_up_bias, int64_t(c.n_experts) * c.ffn_dim);
  vector(layer.expert_down_bias, int64_t(c.n_experts) * c.dim);
  vector(layer.q_a_norm, c.q_lora_rank);
  vector(layer.kv_a_norm, c.kv_lora_rank);
  vector(layer.expert_selection_bias, c.n_experts);
  matrix(layer.wq_a);
  matrix(layer.wkv_a);
  matrix(layer.w_gate);
  matrix(layer.w_up);
  matrix(layer.w_down);
  matrix(layer.router);
  matrix(layer.shared_gate);
  matrix(layer.shared_up);
  matrix(layer.shared_down);
  for (auto* list : {&layer.wk_b, &layer.wv_b, &layer.expert_gate, &layer.expert_up, &layer.expert_down}) {
    for (auto& view : *list) matrix(view);
  }
}

}  // namespace

LayerSlabLayout layer_slab_layout(const LayerWeights& layer, const ModelConfig& config) {
  LayerSlabLayout layout;
  visit_tensors(layer, config, [&](const auto&, int64_t bytes) {
    layout.offsets.push_back(layout.bytes);
    layout.bytes += (bytes + kAlign - 1) / kAlign * kAlign;
  });
  return layout;
}

void pack_layer(const LayerWeights& layer, const ModelConfig& config, const LayerSlabLayout& layout, void* slab,
                ThreadPool* pool) {
  std::vector<CopyJob> copies;
  visit_tensors(layer, config, [&](const auto& field, int64_t bytes) {
    copies.push_back({static_cast<uint8_t*>(slab) + layout.offsets[copies.size()], field, size_t(bytes)});
  });
  SO_CHECK_EQ(copies.size(), layout.offsets.size(), "the layout was made for another layer");
  if (pool) {
    parallel_copy(*pool, copies);
  } else {
    for (const CopyJob& copy : copies) std::memcpy(copy.destination, copy.source, copy.bytes);
  }
}

std::vector<std::pair<const uint8_t*, int64_t>> layer_sources(const LayerWeights& layer, const ModelConfig& config) {
  std::vector<std::pair<const uint8_t*, int64_t>> sources;
  visit_tensors(layer, config, [&](const auto& field, int64_t bytes) {
    sources.emplace_back(reinterpret_cast<const uint8_t*>(field), bytes);
  });
  return sources;
}

std::vector<int> layer_twins(const ModelWeights& weights, const ModelConfig& config, int n_layers) {
  std::map<std::vector<std::pair<const uint8_t*, int64_t>>, int> first_with;
  std::vector<int> twins;
  for (int layer = 0; layer < n_layers; ++layer) {
    twins.push_back(first_with.try_emplace(layer_sources(weights.layers[size_t(layer)], config), layer).first->second);
  }
  return twins;
}

LayerWeights layer_views(const LayerWeights& like, const ModelConfig& config, const LayerSlabLayout& layout,
                         const void* slab) {
  LayerWeights views = like;
  size_t index = 0;
  visit_tensors(views, config, [&](auto& field, int64_t) {
    const void* at = static_cast<const uint8_t*>(slab) + layout.offsets[index++];
    field = static_cast<std::remove_reference_t<decltype(field)>>(at);
  });
  return views;
}

}  // namespace so
