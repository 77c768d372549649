// Plain-data parameters of backend ops, shared by every backend.
#pragma once

#include <cstdint>
#include <span>

#include "tensor/dtype.h"

namespace so {

enum class RopeStyle {
  kNormal,  // rotates adjacent pairs (x[2i], x[2i+1]): GGUF llama layout
  kNeox,    // rotates (x[i], x[i + n_rot/2]): qwen2, and HF llama weights
};

// Mirrors llama.cpp's rope with YaRN and per-frequency factors.
struct RopeParams {
  RopeStyle style = RopeStyle::kNormal;
  int n_rot = 0;               // rotated dims per head (<= head_dim); the rest pass through
  float theta_base = 10000.0f;
  float freq_scale = 1.0f;     // 1/factor for linear and YaRN scaling
  float ext_factor = 0.0f;     // YaRN extrapolation mix; 0 disables YaRN
  float attn_factor = 1.0f;    // YaRN magnitude scale
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int n_ctx_orig = 0;          // YaRN original training context
  const float* freq_factors = nullptr;  // (n_rot/2) divisors of theta (llama3 scaling), or null
};

// Geometry of the paged KV cache. A page holds page_tokens consecutive positions of one
// row for every layer:
//   page = [layer][K, V][kv_head][page_tokens][head_dim]  (dtype elements)
// note: per-head slabs keep one head's keys contiguous, so attention streams them.
struct KvGeometry {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int page_tokens = 256;
  DType dtype = DType::kF16;  // F16 or F32
  // Keys are their own values (DeepSeek's latent attention): one slab per head, and V
  // offsets equal K's; a store writes the same vector for both.
  bool values_in_keys = false;

  int64_t element_bytes() const { return dtype == DType::kF32 ? 4 : 2; }
  int64_t head_slab_bytes() const { return int64_t(page_tokens) * head_dim * element_bytes(); }
  int64_t layer_bytes() const { return (values_in_keys ? 1 : 2) * n_kv_heads * head_slab_bytes(); }
  int64_t page_bytes() const { return n_layers * layer_bytes(); }
  // Byte offset of (layer, K or V, kv_head, slot 0) inside a page.
  int64_t offset(int layer, bool value, int kv_head) const {
    return layer * layer_bytes() + (value && !values_in_keys ? n_kv_heads : 0) * head_slab_bytes() +
           kv_head * head_slab_bytes();
  }
};

// One row of a forward step, as attention sees it. The row's tokens are
// [first_token, first_token + n_tokens) of the step and sit at positions
// [kv_start, kv_start + n_tokens); token i attends to positions 0 .. kv_start + i (the last
// AttentionParams::window of them on sliding layers).
struct AttentionRow {
  int32_t first_token = 0;
  int32_t n_tokens = 0;
  int32_t kv_start = 0;
  std::span<void* const> pages;  // enough pages for kv_start + n_tokens positions
};

struct AttentionParams {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 0.0f;  // usually 1/sqrt(head_dim)
  int window = 0;      // > 0: a token at p sees positions (p - window, p] only (sliding layers)
  // (n_heads) logits that join each head's softmax without a value (gpt-oss), or null. In
  // memory the backend's attention reads: device memory for a device backend.
  const float* sinks = nullptr;
};

}  // namespace so
