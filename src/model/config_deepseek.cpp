#include "model/config_deepseek.h"

#include <cmath>

namespace so {
namespace {

Status check_range(const char* what, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    return format_error("DeepSeek ", what, " is ", value, "; expected ", low, " to ", high,
                        "; the model's configuration is damaged");
  }
  return Status::Ok();
}

// YaRN's magnitude correction as DeepSeek applies it: 1 + 0.1 * m * ln(factor) past factor 1.
float yarn_mscale(float factor, float m) { return factor <= 1.0f ? 1.0f : 1.0f + 0.1f * m * std::log(factor); }

// MLA geometry and the attention scale: queries and keys are nope + rope wide per head (the
// scale's 1/sqrt of that, times mscale^2 under YaRN), the cache one latent head.
Status set_latent_attention(int64_t q_lora, int64_t kv_lora, int64_t qk_nope, int64_t v_head, float mscale_all_dim,
                            float rope_mscale, ModelConfig& c) {
  SO_TRY(check_range("q_lora_rank", q_lora, 0, 1 << 16));
  SO_TRY(check_range("kv_lora_rank", kv_lora, 1, 1 << 16));
  SO_TRY(check_range("qk_nope_head_dim", qk_nope, 1, 1 << 12));
  SO_TRY(check_range("v_head_dim", v_head, 1, 1 << 12));
  c.q_lora_rank = int(q_lora);
  c.kv_lora_rank = int(kv_lora);
  c.qk_nope_dim = int(qk_nope);
  c.v_head_dim = int(v_head);
  c.head_dim = c.rope.n_rot + c.kv_lora_rank;
  c.n_kv_heads = 1;
  // note: the checkpoint's rope dims are interleaved pairs; its converter does not permute.
  c.rope.style = RopeStyle::kNormal;
  float mscale = 1.0f;
  if (c.rope.scaling == RopeScaling::kYarn) {
    mscale = yarn_mscale(c.rope.factor, mscale_all_dim);
    // Rotated dims keep magnitude rope_mscale (1 in every release): cancel the rope op's own
    // YaRN magnitude 1 + 0.1 ln(factor).
    c.rope.yarn_attn_factor = rope_mscale / yarn_mscale(c.rope.factor, 1.0f);
  }
  c.attention_scale = mscale * mscale / std::sqrt(float(c.qk_head_dim()));
  return Status::Ok();
}

Status set_routing(int64_t n_dense, int64_t dense_ffn, int64_t n_shared, int64_t groups, int64_t groups_used,
                   double scale, ModelConfig& c) {
  SO_TRY(check_range("leading dense layer count", n_dense, 0, c.n_layers));
  SO_TRY(check_range("shared expert count", n_shared, 0, 64));
  c.n_dense_layers = int(n_dense);
  c.dense_ffn_dim = int(dense_ffn);
  if (n_dense > 0) SO_TRY(check_range("dense FFN width", dense_ffn, 1, 1 << 20));
  c.n_shared_experts = int(n_shared);
  if (groups > 1) {
    if (c.n_experts % groups != 0 || groups_used < 1 || groups_used > groups ||
        c.n_experts_used > groups_used * (c.n_experts / groups)) {
      return format_error("DeepSeek expert groups (", groups, ", ", groups_used, " used) do not fit ", c.n_experts,
                          " experts with ", c.n_experts_used, " chosen per token");
    }
    c.n_expert_groups = int(groups);
    c.n_expert_groups_used = int(groups_used);
  }
  if (!(scale > 0.0) || !std::isfinite(scale)) {
    return format_error("DeepSeek routed expert scale ", scale, " must be a positive finite number");
  }
  c.expert_weights_scale = float(scale);
  return Status::Ok();
}

}  // namespace

Status deepseek2_from_gguf(const Metadata& m, const std::string& p, bool has_selection_bias, ModelConfig& c) {
  SO_ASSIGN_OR_RETURN(int64_t kv_lora, m.get_int(p + "attention.kv_lora_rank"));
  SO_ASSIGN_OR_RETURN(int64_t q_lora, m.get_int_or(p + "attention.q_lora_rank", 0));
  // Files converted for absorbed MLA give the cache's sizes under key_length/value_length and
  // the per-head ones under *_mla; older files give per-head sizes under the plain keys.
  SO_ASSIGN_OR_RETURN(int64_t key_length, m.get_int_or(p + "attention.key_length", 0));
  SO_ASSIGN_OR_RETURN(int64_t value_length, m.get_int_or(p + "attention.value_length", 0));
  SO_ASSIGN_OR_RETURN(int64_t key_mla, m.get_int_or(p + "attention.key_length_mla", key_length));
  SO_ASSIGN_OR_RETURN(int64_t value_mla, m.get_int_or(p + "attention.value_length_mla", value_length));
  // note: the converter stores 0.1 * mscale_all_dim; llama.cpp divides it back out.
  SO_ASSIGN_OR_RETURN(double log_mul, m.get_float_or(p + "rope.scaling.yarn_log_multiplier", 0.0));
  SO_TRY(set_latent_attention(q_lora, kv_lora, key_mla - c.rope.n_rot, value_mla, float(log_mul / 0.1), 1.0f, c));

  SO_ASSIGN_OR_RETURN(int64_t n_dense, m.get_int_or(p + "leading_dense_block_count", 0));
  SO_ASSIGN_OR_RETURN(int64_t dense_ffn, m.get_int_or(p + "feed_forward_length", 0));
  SO_ASSIGN_OR_RETURN(int64_t n_shared, m.get_int_or(p + "expert_shared_count", 0));
  SO_ASSIGN_OR_RETURN(int64_t groups, m.get_int_or(p + "expert_group_count", 0));
  SO_ASSIGN_OR_RETURN(int64_t groups_used, m.get_int_or(p + "expert_group_used_count", 0));
  SO_ASSIGN_OR_RETURN(double scale, m.get_float_or(p + "expert_weights_scale", 1.0));
  SO_ASSIGN_OR_RETURN(bool normalize, m.get_bool_or(p + "expert_weights_norm", false));
  SO_ASSIGN_OR_RETURN(int64_t gating, m.get_int_or(p + "expert_gating_func", 1));  // 0 (unset): softmax
  if (gating < 0 || gating > 2) {
    return unsupported("expert gating function ", gating, " is not supported; expected 1 (softmax) or 2 (sigmoid)");
  }
  c.gating = gating == 2 ? MoeGating::kSigmoid : MoeGating::kSoftmax;
  c.moe_normalize = normalize;
  c.expert_selection_bias = has_selection_bias;
  return set_routing(n_dense, dense_ffn, n_shared, groups, groups_used, scale, c);
}

Status deepseek2_from_hf(const Metadata& m, ModelConfig& c) {
  SO_ASSIGN_OR_RETURN(int64_t kv_lora, m.get_int("kv_lora_rank"));
  SO_ASSIGN_OR_RETURN(int64_t q_lora, m.get_int_or("q_lora_rank", 0));  // null: no bottleneck (V2-Lite)
  SO_ASSIGN_OR_RETURN(int64_t qk_nope, m.get_int("qk_nope_head_dim"));
  SO_ASSIGN_OR_RETURN(int64_t qk_rope, m.get_int("qk_rope_head_dim"));
  SO_ASSIGN_OR_RETURN(int64_t v_head, m.get_int("v_head_dim"));
  SO_TRY(check_range("qk_rope_head_dim", qk_rope, 2, 1 << 12));
  if (qk_rope % 2 != 0) return format_error("DeepSeek qk_rope_head_dim ", qk_rope, " must be even");
  c.rope.n_rot = int(qk_rope);
  SO_ASSIGN_OR_RETURN(double mscale, m.get_float_or("rope_scaling.mscale", 1.0));
  SO_ASSIGN_OR_RETURN(double mscale_all_dim, m.get_float_or("rope_scaling.mscale_all_dim", 0.0));
  const float factor = c.rope.factor;
  const float rope_mscale =
      c.rope.scaling == RopeScaling::kYarn ? yarn_mscale(factor, float(mscale)) / yarn_mscale(factor, float(mscale_all_dim)) : 1.0f;
  SO_TRY(set_latent_attention(q_lora, kv_lora, qk_nope, v_head, float(mscale_all_dim), rope_mscale, c));

  SO_ASSIGN_OR_RETURN(int64_t n_experts, m.get_int("n_routed_experts"));
  SO_ASSIGN_OR_RETURN(int64_t used, m.get_int("num_experts_per_tok"));
  SO_ASSIGN_OR_RETURN(int64_t layer_freq, m.get_int_or("moe_layer_freq", 1));
  if (layer_freq != 1) {
    return unsupported("DeepSeek with moe_layer_freq ", layer_freq, " is not supported; every layer after the first ",
                       "dense ones must be MoE (as in every release)");
  }
  c.n_experts = int(n_experts);
  c.n_experts_used = int(used);
  SO_ASSIGN_OR_RETURN(std::string scoring, m.get_string_or("scoring_func", "softmax"));
  if (scoring != "softmax" && scoring != "sigmoid") {
    return unsupported("DeepSeek scoring_func '", scoring, "' is not supported; expected softmax or sigmoid");
  }
  c.gating = scoring == "sigmoid" ? MoeGating::kSigmoid : MoeGating::kSoftmax;
  SO_ASSIGN_OR_RETURN(bool normalize, m.get_bool_or("norm_topk_prob", false));
  c.moe_normalize = normalize;
  SO_ASSIGN_OR_RETURN(std::string method, m.get_string_or("topk_method", "greedy"));
  if (method != "greedy" && method != "noaux_tc" && method != "group_limited_greedy") {
    return unsupported("DeepSeek topk_method '", method, "' is not supported; expected greedy, ",
                       "group_limited_greedy (V2) or noaux_tc (V3)");
  }
  c.expert_selection_bias = method == "noaux_tc";
  c.expert_group_by_best = method == "group_limited_greedy";
  SO_ASSIGN_OR_RETURN(int64_t n_dense, m.get_int_or("first_k_dense_replace", 0));
  SO_ASSIGN_OR_RETURN(int64_t dense_ffn, m.get_int_or("intermediate_size", 0));
  SO_ASSIGN_OR_RETURN(int64_t n_shared, m.get_int_or("n_shared_experts", 0));
  SO_ASSIGN_OR_RETURN(int64_t groups, m.get_int_or("n_group", 1));
  SO_ASSIGN_OR_RETURN(int64_t groups_used, m.get_int_or("topk_group", 1));
  SO_ASSIGN_OR_RETURN(double scale, m.get_float_or("routed_scaling_factor", 1.0));
  return set_routing(n_dense, dense_ffn, n_shared, method == "greedy" ? 1 : groups, groups_used, scale, c);
}

}  // namespace so
