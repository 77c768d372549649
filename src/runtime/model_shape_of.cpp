#include "runtime/model_shape_of.h"

#include <algorithm>

#include "model/forward.h"
#include "offload/layer_slab.h"

namespace so {
namespace {

MatrixShape matrix_of(const TensorView& view, double token_share = 1.0) {
  return {view.dtype, view.shape[0], view.shape.inner(), view.bytes(), token_share};
}

}  // namespace

ModelShape model_shape_of(const Model& model) {
  const ModelConfig& c = model.config;
  ModelShape shape;
  shape.name = c.name;
  shape.n_layers = c.n_layers;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.head_dim = c.head_dim;
  shape.dim = c.dim;
  shape.ffn_dim = c.ffn_scratch_width();
  shape.extra_scratch_width = (c.attention_scratch_width() - c.q_dim()) + (c.n_shared_experts > 0 ? c.dim : 0);
  shape.n_vocab = c.n_vocab;
  shape.n_ctx = c.n_ctx_train;
  // note: the planner takes the layers as alike; the last stands for them (DeepSeek's first
  // layers are dense and smaller), and the largest sets the bytes a streamed layer moves.
  const LayerWeights& layer = model.weights.layers.back();
  for (const TensorView* view : {&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.wq_a, &layer.wkv_a,
                                 &layer.w_gate, &layer.w_up, &layer.w_down, &layer.router, &layer.shared_gate,
                                 &layer.shared_up, &layer.shared_down}) {
    if (view->data) shape.layer.push_back(matrix_of(*view));
  }
  for (const auto* heads : {&layer.wk_b, &layer.wv_b}) {
    for (const TensorView& view : *heads) shape.layer.push_back(matrix_of(view));
  }
  if (c.is_moe()) {
    const double share = double(c.n_experts_used) / c.n_experts;
    for (const auto* experts : {&layer.expert_gate, &layer.expert_up, &layer.expert_down}) {
      for (const TensorView& view : *experts) shape.layer.push_back(matrix_of(view, share));
    }
  }
  for (const LayerWeights& each : model.weights.layers) {
    shape.layer_bytes = std::max(shape.layer_bytes, layer_slab_layout(each, c).bytes);
  }
  shape.layer_twins = layer_twins(model.weights, c, c.n_layers);
  shape.head = matrix_of(model.weights.output);
  const KvGeometry geometry = kv_geometry_for(c);
  shape.kv_bytes_per_token = geometry.page_bytes() / geometry.page_tokens;
  return shape;
}

}  // namespace so
