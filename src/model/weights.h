// A model's weights under canonical roles, as views into the mapped file(s).
// Matmul weights stay in their file dtype (zero-copy); norm and bias vectors are f32
// (converted at load when the file stores them otherwise).
#pragma once

#include <memory>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/status.h"
#include "format/model_file.h"
#include "model/config.h"
#include "tensor/tensor.h"

namespace so {

struct LayerWeights {
  const float* attn_norm = nullptr;  // (dim)
  TensorView wq;                     // (q_dim, dim)
  TensorView wk;                     // (kv_dim, dim)
  TensorView wv;                     // (kv_dim, dim)
  TensorView wo;                     // (dim, q_dim)
  const float* bq = nullptr;         // (q_dim), qwen2 only
  const float* bk = nullptr;         // (kv_dim)
  const float* bv = nullptr;         // (kv_dim)
  const float* q_norm = nullptr;     // (head_dim), qk-norm families
  const float* k_norm = nullptr;     // (head_dim)
  const float* post_attn_norm = nullptr;  // (dim), sandwich norms
  const float* ffn_norm = nullptr;   // (dim)
  const float* post_ffn_norm = nullptr;   // (dim), sandwich norms
  const float* bo = nullptr;         // (dim), attention output bias (gpt-oss)
  const float* attn_sinks = nullptr; // (n_heads), a logit per head in every softmax (gpt-oss)
  // DeepSeek's latent attention (config.h): wq is the query projection after the bottleneck
  // (n_heads * qk_head_dim, q_lora_rank or dim); wk, wv stay empty.
  TensorView wq_a;                   // (q_lora_rank, dim), or empty
  const float* q_a_norm = nullptr;   // (q_lora_rank)
  TensorView wkv_a;                  // (kv_lora_rank + n_rot, dim): the latent, then the rope part
  const float* kv_a_norm = nullptr;  // (kv_lora_rank)
  std::vector<TensorView> wk_b;      // n_heads x (kv_lora_rank, qk_nope_dim): a head's query into the latent
  std::vector<TensorView> wv_b;      // n_heads x (v_head_dim, kv_lora_rank): the latent output to values
  // dense FFN
  TensorView w_gate;                 // (ffn_dim, dim)
  TensorView w_up;                   // (ffn_dim, dim)
  TensorView w_down;                 // (dim, ffn_dim)
  // MoE FFN
  TensorView router;                 // (n_experts, dim)
  std::vector<TensorView> expert_gate;  // n_experts x (ffn_dim, dim)
  std::vector<TensorView> expert_up;    // n_experts x (ffn_dim, dim)
  std::vector<TensorView> expert_down;  // n_experts x (dim, ffn_dim)
  const float* router_bias = nullptr;   // (n_experts), gpt-oss
  const float* expert_gate_bias = nullptr;  // (n_experts, ffn_dim)
  const float* expert_up_bias = nullptr;    // (n_experts, ffn_dim)
  const float* expert_down_bias = nullptr;  // (n_experts, dim)
  const float* expert_selection_bias = nullptr;  // (n_experts), added to scores for choosing only
  // Shared experts (DeepSeek): a dense FFN of shared_ffn_dim beside the routed experts.
  TensorView shared_gate;            // (shared_ffn_dim, dim)
  TensorView shared_up;              // (shared_ffn_dim, dim)
  TensorView shared_down;            // (dim, shared_ffn_dim)

  // Bytes of this layer's tensors in their file dtypes (what streaming a layer moves).
  int64_t bytes() const;
};

struct ModelWeights {
  TensorView token_embedding;        // (n_vocab, dim)
  const float* output_norm = nullptr;  // (dim)
  TensorView output;                 // (n_vocab, dim); the embedding when tied
  std::vector<float> rope_freq_factors;  // (n_rot / 2) for llama3 scaling, else empty
  std::vector<LayerWeights> layers;
  std::vector<AlignedBuffer> owned_vectors;  // f32 copies backing the vector pointers

  int64_t bytes() const;  // everything a full forward pass reads
};

// Finds, checks (names, shapes, dtypes) and maps every weight the config calls for.
Result<ModelWeights> map_model_weights(const ModelFile& file, const ModelConfig& config);

// The tensors map_model_weights looks for in a file of this config and format (what
// --load-format dummy makes): one source of names and shapes for both.
struct ExpectedTensor {
  std::string name;
  Shape shape;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config, ModelFormat format);

}  // namespace so
