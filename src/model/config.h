// The canonical description of a model, whatever file it came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "base/status.h"
#include "format/metadata.h"
#include "format/model_file.h"

namespace so {

enum class Architecture {
  kLlama,    // Llama 2/3, Mistral, SmolLM2, TinyLlama
  kQwen2,    // llama + QKV biases, NeoX rope
  kMixtral,  // llama attention + top-k MoE FFN
  kQwen3,    // qwen2 without biases, RMSNorm on each head of q and k
  kQwen3Moe, // qwen3 attention + top-k MoE FFN (no shared expert)
  kGemma3,   // qk-norm, sandwich norms, GELU FFN, scaled embeddings, sliding-window layers
  kGptOss,   // biases everywhere, attention sinks, alternate sliding layers, clamped-SwiGLU MoE
  kDeepseek2,  // multi-head latent attention, dense first layers, shared + routed experts (V2, V3)
};
std::string_view architecture_name(Architecture arch);

// How router logits become expert scores.
enum class MoeGating { kSoftmax, kSigmoid };

enum class RopeScaling { kNone, kLinear, kYarn, kLlama3 };

enum class FfnActivation {
  kSilu,      // silu(gate) * up
  kGeluTanh,  // gelu(gate) * up, tanh form (Gemma)
  kSwigluOai, // gpt-oss: g = min(gate, 7); g * sigmoid(1.702 g) * (clamp(up, -7, 7) + 1)
};

struct RopeConfig {
  RopeStyle style = RopeStyle::kNormal;
  int n_rot = 0;  // rotated dims per head
  float theta_base = 10000.0f;
  RopeScaling scaling = RopeScaling::kNone;
  float factor = 1.0f;            // linear / yarn / llama3
  int n_ctx_orig = 0;             // training context before scaling
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  float yarn_attn_factor = 1.0f;
  float llama3_low_freq_factor = 1.0f;
  float llama3_high_freq_factor = 4.0f;
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  std::string name;
  int n_layers = 0;
  int dim = 0;             // residual width (n_embd)
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int ffn_dim = 0;         // dense FFN width, or each expert's width
  int n_vocab = 0;
  int n_ctx_train = 0;
  float rms_eps = 1e-5f;
  RopeConfig rope;
  bool tied_embeddings = false;  // output projection = token embedding
  bool qkv_bias = false;
  bool out_bias = false;         // attention output projection has a bias (gpt-oss)
  bool attention_sinks = false;  // a learned logit per head joins each softmax (gpt-oss)
  bool moe_biases = false;       // router and experts have biases (gpt-oss)
  int n_experts = 0;       // 0: dense FFN
  int n_experts_used = 0;
  bool moe_normalize = true;     // top-k probabilities renormalized to sum 1
  // What the families change in llama's block.
  bool qk_norm = false;          // RMSNorm over each head of q and k before rope
  bool sandwich_norms = false;   // the attention and FFN outputs are normed before the residual add
  FfnActivation activation = FfnActivation::kSilu;
  float embedding_scale = 1.0f;  // gemma: sqrt(dim)
  float attention_scale = 0.0f;  // 0: 1/sqrt(head_dim)
  int sliding_window = 0;        // keys a sliding layer's token sees, itself included
  std::vector<bool> sliding_layers;  // per layer (empty: none slide)
  float sliding_rope_base = 10000.0f;  // sliding layers' rope base (no scaling there); 0: the global rope
  // DeepSeek's multi-head latent attention (kv_lora_rank > 0), run absorbed: every head attends
  // over one shared KV head of head_dim = rope.n_rot + kv_lora_rank (the rope part, then the
  // normed latent), which serves as both key and value; queries are mapped into the latent
  // space per head, and the latent output back to v_head_dim values per head.
  int q_lora_rank = 0;     // queries through a rank-q_lora_rank bottleneck; 0: one projection
  int kv_lora_rank = 0;
  int qk_nope_dim = 0;     // per head, the query/key dims without rope (the checkpoint's view)
  int v_head_dim = 0;
  // MoE beyond one expert width (DeepSeek).
  int n_dense_layers = 0;      // leading layers with a dense FFN of dense_ffn_dim
  int dense_ffn_dim = 0;
  int n_shared_experts = 0;    // a dense FFN of n_shared_experts * ffn_dim beside the routed ones
  MoeGating gating = MoeGating::kSoftmax;
  bool expert_selection_bias = false;  // a per-expert bias added for choosing only (V3)
  int n_expert_groups = 0;     // > 1: experts chosen among the best n_expert_groups_used groups
  int n_expert_groups_used = 0;
  bool expert_group_by_best = false;   // V2's group_limited_greedy: a group's best score ranks it
  float expert_weights_scale = 1.0f;   // routed outputs times this (routed_scaling_factor)

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  bool is_moe() const { return n_experts > 0; }
  bool is_mla() const { return kv_lora_rank > 0; }
  bool layer_is_moe(int layer) const { return is_moe() && layer >= n_dense_layers; }
  int qk_head_dim() const { return qk_nope_dim + rope.n_rot; }  // MLA: a head of the q projection
  // Width of the attention output the output projection reads.
  int attention_out_dim() const { return n_heads * (is_mla() ? v_head_dim : head_dim); }
  int shared_ffn_dim() const { return n_shared_experts * ffn_dim; }
  int layer_ffn_dim(int layer) const { return layer_is_moe(layer) || !is_moe() ? ffn_dim : dense_ffn_dim; }
  // Widths of a forward step's scratch rows (model/forward.cpp), which the planner counts too.
  int ffn_scratch_width() const;        // FFN intermediates, and latent attention's per-head ones
  int attention_scratch_width() const;  // the attention output, and latent attention's queries
  bool layer_slides(int layer) const {
    return sliding_window > 0 && layer < int(sliding_layers.size()) && sliding_layers[layer];
  }
  std::string summary() const;  // one line for logs
};

// From GGUF metadata ("llama.block_count", ...) or from a flattened HF config.json.
Result<ModelConfig> model_config_from_file(const ModelFile& file);

// Per-frequency divisors for llama3 rope scaling (n_rot/2 values), as Llama 3.1's
// converter writes them into rope_freqs.weight.
std::vector<float> llama3_rope_freq_factors(const RopeConfig& rope);

}  // namespace so
