#include "runtime/model_shape_of.h"

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
  shape.ffn_dim = c.ffn_dim;
  shape.n_vocab = c.n_vocab;
  shape.n_ctx = c.n_ctx_train;
  const LayerWeights& layer = model.weights.layers.at(0);
  for (const TensorView* view : {&layer.wq, &layer.wk, &layer.wv, &layer.wo}) shape.layer.push_back(matrix_of(*view));
  if (c.is_moe()) {
    const double share = double(c.n_experts_used) / c.n_experts;
    shape.layer.push_back(matrix_of(layer.router));
    for (const auto* experts : {&layer.expert_gate, &layer.expert_up, &layer.expert_down}) {
      for (const TensorView& view : *experts) shape.layer.push_back(matrix_of(view, share));
    }
  } else {
    for (const TensorView* view : {&layer.w_gate, &layer.w_up, &layer.w_down}) shape.layer.push_back(matrix_of(*view));
  }
  shape.layer_bytes = layer_slab_layout(layer, c).bytes;
  shape.head = matrix_of(model.weights.output);
  const KvGeometry geometry = kv_geometry_for(c);
  shape.kv_bytes_per_token = geometry.page_bytes() / geometry.page_tokens;
  return shape;
}

}  // namespace so
