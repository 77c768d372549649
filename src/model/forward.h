// A model's forward step over a ragged batch of rows (backend/step.h), optionally through
// only its first layers (the self-draft).
#pragma once

#include <cstdint>
#include <span>
#include <algorithm>
#include <vector>

#include "backend/backend.h"
#include "backend/host_attention.h"
#include "backend/step.h"
#include "model/model.h"

namespace so {

// KV geometry that fits a model (page size in positions); n_layers < 0: all of them.
KvGeometry kv_geometry_for(const ModelConfig& config, int page_tokens = 256, int n_layers = -1);

// A slice of the LM head: output rows [first_row, first_row + weight.shape[0]).
struct OutputChunk {
  TensorView weight;
  int64_t first_row = 0;
};

// Where a pass gets each layer's weights, and the LM head's, when they are not read in
// place from the model file: the offload pipeline streams them into device slots, or holds
// them all in device memory (offload/). After acquire, ops issued next see the weights in
// place; after release their memory may be reused. A pass acquires layers 0..n-1, then
// output chunks 0..n_output_chunks()-1, in order.
class LayerSource {
 public:
  virtual ~LayerSource() = default;
  virtual const LayerWeights& acquire(int layer) = 0;
  virtual void release(int layer) = 0;
  virtual int n_output_chunks() const = 0;
  virtual OutputChunk acquire_output(int chunk) = 0;
  virtual void release_output(int chunk) = 0;
  // The final norm's weights where ops can read them; null: the model's own.
  virtual const float* output_norm() const { return nullptr; }
};

class ModelRunner {
 public:
  // n_layers: run only the first n layers, then the final norm and LM head (a self-draft
  // sharing the model's weights); < 0 runs them all.
  ModelRunner(const Model& model, Backend& backend, int n_layers = -1);

  const Model& model() const { return model_; }
  Backend& backend() const { return backend_; }
  int n_layers() const { return n_layers_; }
  // Layers come from `source` (not owned) instead of the model's own weights; null resets.
  void set_layer_source(LayerSource* source) { layer_source_ = source; }
  // Layer-major steps: a step of many tokens (a prefill wave) runs each layer over
  // micro-batches of at most this many tokens, so a streamed layer is loaded once for all
  // of them while the activations beside the residual stream stay bounded; 0: one batch.
  void set_micro_batch_tokens(int64_t tokens) { micro_batch_tokens_ = tokens; }
  // The KV cache is in host memory: attention runs there (not owned); null: on the device.
  void set_host_attention(HostAttention* host_attention) { host_attention_ = host_attention; }

  // Runs the step and writes each row's K/V at its positions (the caller reserved the
  // pages and advances the lengths). logits: backend memory of step.n_logit_rows() x
  // n_vocab floats, in row order.
  Status forward(const StepInput& step, const KvGeometry& geometry, float* logits);

  int64_t steps() const { return steps_; }

 private:
  // note: the scheduler will hand in streamed copies of a layer's weights, so the
  // layer's weights are a parameter rather than looked up here.
  // keep_rows: in the last layer, the token rows that go on to the logits.
  void forward_layer(int layer, const LayerWeights& weights, int64_t n_tokens, const KvGeometry& geometry,
                     bool last_layer, std::span<const int32_t> keep_rows);
  // Norm, Q/K/V, rope, KV store and attention of tokens [start, start + count) into the
  // attention slot; store_only stops after the KV store.
  void attention_block(int layer, const LayerWeights& w, int64_t start, int64_t count, const KvGeometry& geometry,
                       bool store_only);
  // attention_block for DeepSeek's latent attention (config.h).
  void latent_attention_block(int layer, const LayerWeights& w, int64_t start, int64_t count,
                              const KvGeometry& geometry, bool store_only);
  // Output projection and FFN of `count` rows of the residual x, in place.
  void output_block(int layer, const LayerWeights& w, float* x, const float* attn, int64_t count);
  // out (count, dim) = down(act(gate h) * up h).
  void dense_ffn(const TensorView& w_gate, const TensorView& w_up, const TensorView& w_down, const float* h,
                 int64_t count, int64_t ffn_dim, float* out);
  void micro_batch_rows(int64_t start, int64_t count);
  void ensure_workspace(int64_t n_tokens, int64_t n_micro, int64_t n_out);
  // logits (n_out, n_vocab) = normed * output^T, chunk by chunk from the layer source.
  void output_from_source(int64_t n_out, float* logits);
  float* buffer(int index) const { return workspace_[index].as<float>(); }

  const Model& model_;
  Backend& backend_;
  int n_layers_;
  LayerSource* layer_source_ = nullptr;
  HostAttention* host_attention_ = nullptr;
  RopeParams rope_;
  RopeParams sliding_rope_;  // sliding layers': their own base, no scaling
  AttentionParams attention_params_;
  AttentionParams sliding_attention_params_;
  int64_t micro_batch_tokens_ = 0;
  std::vector<Buffer> workspace_;
  static constexpr int kWorkspaceSlots = 12;
  int64_t workspace_rows_[kWorkspaceSlots] = {};  // rows each workspace slot holds
  Buffer chunk_logits_;  // one output chunk's logits before they go to their columns
  // Per-step plain data.
  std::vector<AttentionRow> attention_rows_;
  std::vector<AttentionRow> micro_rows_;  // attention_rows_ cut to one micro-batch
  std::vector<int32_t> gather_indices_;
  std::vector<int32_t> positions_;
  std::vector<int32_t> logit_tokens_;
  int64_t steps_ = 0;
};

}  // namespace so
