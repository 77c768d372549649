#include "model/config.h"

#include <algorithm>
#include <cmath>

#include "model/config_deepseek.h"

namespace so {

std::string_view architecture_name(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama: return "llama";
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kMixtral: return "mixtral";
    case Architecture::kQwen3: return "qwen3";
    case Architecture::kQwen3Moe: return "qwen3moe";
    case Architecture::kGemma3: return "gemma3";
    case Architecture::kGptOss: return "gpt-oss";
    case Architecture::kDeepseek2: return "deepseek2";
  }
  return "?";
}

std::string ModelConfig::summary() const {
  return str_cat(architecture_name(arch), " '", name, "': ", n_layers, " layers, dim ", dim, ", ", n_heads, " heads (",
                 n_kv_heads, " kv) x ", head_dim, ", ffn ", ffn_dim, is_moe() ? str_cat(" x ", n_experts, " experts (top ", n_experts_used, ")") : "",
                 ", vocab ", n_vocab, ", ctx ", n_ctx_train);
}

int ModelConfig::ffn_scratch_width() const {
  return std::max({ffn_dim, dense_ffn_dim, shared_ffn_dim(), q_lora_rank, kv_lora_rank + (is_mla() ? rope.n_rot : 0),
                   qk_nope_dim, v_head_dim});
}

int ModelConfig::attention_scratch_width() const { return std::max(q_dim(), n_heads * (is_mla() ? qk_head_dim() : 0)); }

namespace {

// note: 16.7M positions, past the longest context models train with (10M); a larger value
// is a damaged field, and positions must fit an int.
constexpr int64_t kMaxContext = int64_t(1) << 24;

Status check_positive(const char* what, int64_t value, const std::string& key) {
  if (value <= 0 || value > (1 << 24)) {
    return format_error("model metadata '", key, "' (", what, ") is ", value,
                        "; expected a positive size; the file is damaged or not a language model");
  }
  return Status::Ok();
}

Status validate(const ModelConfig& c) {
  if (c.n_heads <= 0 || c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0) {
    return format_error("attention heads (", c.n_heads, ") must be a positive multiple of key/value heads (",
                        c.n_kv_heads, ")");
  }
  if (c.rope.n_rot <= 0 || c.rope.n_rot > c.head_dim || c.rope.n_rot % 2 != 0) {
    return format_error("rope dimension count ", c.rope.n_rot, " must be even and at most the head size ",
                        c.head_dim);
  }
  if (c.is_moe() && (c.n_experts_used <= 0 || c.n_experts_used > c.n_experts)) {
    return format_error("experts used per token (", c.n_experts_used, ") must be between 1 and the expert count (",
                        c.n_experts, ")");
  }
  if (!(c.rms_eps > 0.0f) || c.rms_eps > 1.0f) return format_error("rms norm epsilon ", c.rms_eps, " is not in (0, 1]");
  if (!(c.rope.theta_base > 0.0f) || !std::isfinite(c.rope.theta_base)) {
    return format_error("rope base (freq_base / rope_theta) is ", c.rope.theta_base,
                        "; expected a positive finite number; the file is damaged");
  }
  if (c.n_ctx_train <= 0 || c.n_ctx_train > kMaxContext) {
    return format_error("context length ", c.n_ctx_train, " is not in [1, ", kMaxContext,
                        "]; the file is damaged or its metadata is wrong");
  }
  if (c.rope.scaling != RopeScaling::kNone) {
    if (!(c.rope.factor > 0.0f) || !std::isfinite(c.rope.factor)) {
      return format_error("rope scaling factor ", c.rope.factor, " must be a positive finite number");
    }
    if (c.rope.n_ctx_orig <= 0 || c.rope.n_ctx_orig > kMaxContext) {
      return format_error("rope scaling's original context length ", c.rope.n_ctx_orig, " is not in [1, ",
                          kMaxContext, "]");
    }
  }
  if (c.rope.scaling == RopeScaling::kYarn &&
      !(std::isfinite(c.rope.yarn_beta_fast) && std::isfinite(c.rope.yarn_beta_slow) && c.rope.yarn_beta_fast > 0 &&
        c.rope.yarn_beta_slow > 0)) {
    return format_error("YaRN betas (fast ", c.rope.yarn_beta_fast, ", slow ", c.rope.yarn_beta_slow,
                        ") must be positive finite numbers");
  }
  if (c.rope.scaling == RopeScaling::kLlama3 &&
      !(c.rope.llama3_low_freq_factor > 0 && c.rope.llama3_high_freq_factor > c.rope.llama3_low_freq_factor &&
        std::isfinite(c.rope.llama3_high_freq_factor))) {
    return format_error("llama3 rope frequency factors (low ", c.rope.llama3_low_freq_factor, ", high ",
                        c.rope.llama3_high_freq_factor, ") must satisfy 0 < low < high");
  }
  return Status::Ok();
}

// What each family changes in llama's block, whatever file it came from (dims set first).
void set_family_traits(ModelConfig& c) {
  using A = Architecture;
  c.qkv_bias = c.arch == A::kQwen2 || c.arch == A::kGptOss;
  c.qk_norm = c.arch == A::kQwen3 || c.arch == A::kQwen3Moe || c.arch == A::kGemma3;
  if (c.arch == A::kGemma3) {
    c.sandwich_norms = true;
    c.activation = FfnActivation::kGeluTanh;
    c.embedding_scale = std::sqrt(float(c.dim));
  }
  if (c.arch == A::kGptOss) {
    c.out_bias = true;
    c.attention_sinks = true;
    c.moe_biases = true;
    c.activation = FfnActivation::kSwigluOai;
  }
}

// Gemma 3 as llama.cpp reads it: five sliding layers (base 10000, unscaled rope) for every
// global one, embeddings times sqrt(dim), the converter's norms already hold 1 + w.
Status gemma3_from_gguf(const Metadata& m, const std::string& p, ModelConfig& c) {
  // note: gemma_pytorch scales queries by 1/sqrt(dim / heads) for the 27B (62 layers) only.
  c.attention_scale = c.n_layers == 62 ? 1.0f / std::sqrt(float(c.dim / c.n_heads)) : 1.0f / std::sqrt(float(c.head_dim));
  SO_ASSIGN_OR_RETURN(int64_t window, m.get_int_or(p + "attention.sliding_window", 0));
  if (window < 0 || window > (int64_t(1) << 24)) {
    return format_error("model metadata '", p, "attention.sliding_window' is ", window, "; the file is damaged");
  }
  c.sliding_window = int(window);
  for (int layer = 0; layer < c.n_layers; ++layer) c.sliding_layers.push_back(window > 0 && layer % 6 < 5);
  SO_ASSIGN_OR_RETURN(double softcap, m.get_float_or(p + "final_logit_softcapping", 0.0));
  if (softcap != 0.0) {
    return unsupported("final logit soft-capping (", softcap, ") is not supported; Gemma 3 releases do not use it");
  }
  return Status::Ok();
}

// gpt-oss's layers as llama.cpp runs them: `period`-layer groups whose first period - 1 layers
// slide (with the global rope).
Status gpt_oss_layers(int64_t window, int64_t period, ModelConfig& c) {
  if (window <= 0 || window > (int64_t(1) << 24) || period <= 0 || period > c.n_layers + 1) {
    return format_error("gpt-oss sliding window ", window, " / pattern ", period,
                        " is not valid; expected a positive window and period");
  }
  c.sliding_window = int(window);
  c.sliding_rope_base = 0.0f;
  for (int layer = 0; layer < c.n_layers; ++layer) c.sliding_layers.push_back(layer % period < period - 1);
  return Status::Ok();
}

// A factor the file gives for a scaling that needs one: present, positive and finite.
Status check_scaling_factor(const Metadata& m, const std::string& key, const std::string& scaling) {
  if (!m.contains(key)) return Status::Ok();
  SO_ASSIGN_OR_RETURN(double factor, m.get_float(key));
  if (!(factor > 0.0) || !std::isfinite(factor)) {
    return format_error("model metadata '", key, "' is ", factor, " for ", scaling,
                        " rope scaling; expected a positive finite factor; the file is damaged");
  }
  return Status::Ok();
}

Result<ModelConfig> from_gguf(const ModelFile& file) {
  const Metadata& m = file.metadata;
  SO_ASSIGN_OR_RETURN(std::string arch_name, m.get_string("general.architecture"));
  ModelConfig c;
  const std::string p = arch_name + ".";
  SO_ASSIGN_OR_RETURN(int64_t n_experts, m.get_int_or(p + "expert_count", 0));
  if (arch_name == "llama" || arch_name == "mistral") {
    c.arch = n_experts > 0 ? Architecture::kMixtral : Architecture::kLlama;
  } else if (arch_name == "qwen2") {
    c.arch = Architecture::kQwen2;
  } else if (arch_name == "qwen3" || arch_name == "qwen3moe") {
    c.arch = arch_name == "qwen3" ? Architecture::kQwen3 : Architecture::kQwen3Moe;
  } else if (arch_name == "gemma3") {
    c.arch = Architecture::kGemma3;
  } else if (arch_name == "gpt-oss") {
    c.arch = Architecture::kGptOss;
  } else if (arch_name == "deepseek2") {
    c.arch = Architecture::kDeepseek2;
  } else {
    return unsupported("architecture '", arch_name, "' is not supported; supported: llama (Llama, Mistral, SmolLM2, ",
                       "TinyLlama, Mixtral), qwen2, qwen3, qwen3moe, gemma3, gpt-oss and deepseek2");
  }
  SO_ASSIGN_OR_RETURN(c.name, m.get_string_or("general.name", arch_name));
  SO_ASSIGN_OR_RETURN(int64_t n_layers, m.get_int(p + "block_count"));
  SO_ASSIGN_OR_RETURN(int64_t dim, m.get_int(p + "embedding_length"));
  // note: MoE families give the experts' width separately (the dense width is for other layers).
  const std::string ffn_key = m.contains(p + "expert_feed_forward_length") ? p + "expert_feed_forward_length"
                                                                            : p + "feed_forward_length";
  SO_ASSIGN_OR_RETURN(int64_t ffn_dim, m.get_int(ffn_key));
  SO_ASSIGN_OR_RETURN(int64_t n_heads, m.get_int(p + "attention.head_count"));
  SO_ASSIGN_OR_RETURN(int64_t n_kv_heads, m.get_int_or(p + "attention.head_count_kv", n_heads));
  SO_TRY(check_positive("layers", n_layers, p + "block_count"));
  SO_TRY(check_positive("width", dim, p + "embedding_length"));
  SO_TRY(check_positive("FFN width", ffn_dim, ffn_key));
  SO_TRY(check_positive("heads", n_heads, p + "attention.head_count"));
  SO_TRY(check_positive("kv heads", n_kv_heads, p + "attention.head_count_kv"));
  SO_ASSIGN_OR_RETURN(int64_t head_dim, m.get_int_or(p + "attention.key_length", dim / n_heads));
  SO_ASSIGN_OR_RETURN(int64_t n_rot, m.get_int_or(p + "rope.dimension_count", head_dim));
  SO_ASSIGN_OR_RETURN(int64_t n_ctx, m.get_int_or(p + "context_length", 4096));
  SO_ASSIGN_OR_RETURN(double eps, m.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  SO_ASSIGN_OR_RETURN(double theta, m.get_float_or(p + "rope.freq_base", 10000.0));
  SO_TRY(check_positive("context length", n_ctx, p + "context_length"));
  SO_TRY(check_positive("head size", head_dim, p + "attention.key_length"));
  SO_TRY(check_positive("rope dimensions", n_rot, p + "rope.dimension_count"));
  c.n_layers = int(n_layers);
  c.dim = int(dim);
  c.ffn_dim = int(ffn_dim);
  c.n_heads = int(n_heads);
  c.n_kv_heads = int(n_kv_heads);
  c.head_dim = int(head_dim);
  c.n_ctx_train = int(n_ctx);
  c.rms_eps = float(eps);
  c.rope.n_rot = int(n_rot);
  c.rope.theta_base = float(theta);
  // note: GGUF llama weights have Q/K rows permuted by the converter for adjacent-pair
  // rope; the other families keep HF's layout and rotate halves.
  c.rope.style = c.arch == Architecture::kLlama || c.arch == Architecture::kMixtral ? RopeStyle::kNormal
                                                                                   : RopeStyle::kNeox;
  set_family_traits(c);
  if (c.arch == Architecture::kGemma3) SO_TRY(gemma3_from_gguf(m, p, c));
  if (c.arch == Architecture::kGptOss) {
    SO_ASSIGN_OR_RETURN(int64_t window, m.get_int(p + "attention.sliding_window"));
    SO_ASSIGN_OR_RETURN(int64_t period, m.get_int_or(p + "attention.sliding_window_pattern", 2));
    SO_TRY(gpt_oss_layers(window, period, c));
  }
  c.n_experts = int(n_experts);
  if (c.is_moe()) {
    SO_ASSIGN_OR_RETURN(int64_t used, m.get_int(p + "expert_used_count"));
    c.n_experts_used = int(used);
  }

  SO_ASSIGN_OR_RETURN(std::string scaling, m.get_string_or(p + "rope.scaling.type", "none"));
  if (scaling == "linear" || scaling == "yarn") SO_TRY(check_scaling_factor(m, p + "rope.scaling.factor", scaling));
  SO_ASSIGN_OR_RETURN(double factor, m.get_float_or(p + "rope.scaling.factor", 0.0));
  if (factor == 0.0) {  // older files: rope.scale_linear
    SO_ASSIGN_OR_RETURN(double linear, m.get_float_or(p + "rope.scale_linear", 0.0));
    if (linear > 0.0 && scaling == "none") scaling = "linear";
    factor = linear;
  }
  SO_ASSIGN_OR_RETURN(int64_t n_ctx_orig, m.get_int_or(p + "rope.scaling.original_context_length", n_ctx));
  SO_TRY(check_positive("original context length", n_ctx_orig, p + "rope.scaling.original_context_length"));
  c.rope.n_ctx_orig = int(n_ctx_orig);
  if (scaling == "linear" && factor > 0.0 && factor != 1.0) {
    c.rope.scaling = RopeScaling::kLinear;
    c.rope.factor = float(factor);
  } else if (scaling == "yarn") {
    c.rope.scaling = RopeScaling::kYarn;
    c.rope.factor = factor > 0.0 ? float(factor) : 1.0f;
    SO_ASSIGN_OR_RETURN(double beta_fast, m.get_float_or(p + "rope.scaling.yarn_beta_fast", 32.0));
    SO_ASSIGN_OR_RETURN(double beta_slow, m.get_float_or(p + "rope.scaling.yarn_beta_slow", 1.0));
    c.rope.yarn_beta_fast = float(beta_fast);
    c.rope.yarn_beta_slow = float(beta_slow);
  } else if (scaling != "none" && scaling != "linear") {
    return unsupported("rope scaling '", scaling, "' is not supported; supported: none, linear, yarn, and llama3 ",
                       "(through rope_freqs.weight)");
  }
  // Llama 3.1 style scaling arrives as a rope_freqs.weight tensor; the weights loader reads it.
  if (c.arch == Architecture::kDeepseek2) {
    const bool selection_bias = file.tensors.find("blk." + std::to_string(c.n_layers - 1) + ".exp_probs_b.bias");
    SO_TRY(deepseek2_from_gguf(m, p, selection_bias, c));
  }

  // Vocabulary: explicit key, else the embedding's row count (checked again with the weights).
  if (auto vocab = m.get_int(p + "vocab_size"); vocab.ok()) {
    c.n_vocab = int(*vocab);
  } else if (const TensorInfo* embedding = file.tensors.find("token_embd.weight")) {
    c.n_vocab = int(embedding->shape[0]);
  }
  c.tied_embeddings = file.tensors.find("output.weight") == nullptr;
  SO_TRY(check_positive("vocabulary", c.n_vocab, p + "vocab_size"));
  SO_TRY(validate(c));
  return c;
}

Status qwen3_moe_from_hf(const Metadata& m, ModelConfig& c) {
  SO_ASSIGN_OR_RETURN(int64_t n_experts, m.get_int("num_experts"));
  SO_ASSIGN_OR_RETURN(int64_t used, m.get_int("num_experts_per_tok"));
  SO_ASSIGN_OR_RETURN(bool normalize, m.get_bool_or("norm_topk_prob", false));
  SO_ASSIGN_OR_RETURN(int64_t sparse_step, m.get_int_or("decoder_sparse_step", 1));
  // note: every released Qwen3-MoE is MoE in every layer; a dense layer between them has
  // other tensors, which this engine does not map.
  std::vector<int64_t> dense_layers;
  if (m.contains("mlp_only_layers")) {
    SO_ASSIGN_OR_RETURN(dense_layers, m.get_int_array("mlp_only_layers"));
  }
  if (sparse_step != 1 || !dense_layers.empty()) {
    return unsupported("Qwen3-MoE with dense layers (decoder_sparse_step ", sparse_step,
                       ", mlp_only_layers) is not supported; every layer must be MoE");
  }
  c.n_experts = int(n_experts);
  c.n_experts_used = int(used);
  c.moe_normalize = normalize;
  return Status::Ok();
}

// Gemma 3's text config: layer_types (or sliding_window_pattern) picks the sliding layers,
// query_pre_attn_scalar the attention scale, rope_local_base_freq the sliding layers' base.
Status gemma3_from_hf(const Metadata& m, ModelConfig& c) {
  SO_ASSIGN_OR_RETURN(std::string activation, m.get_string_or("hidden_activation", "gelu_pytorch_tanh"));
  if (activation != "gelu_pytorch_tanh" && activation != "gelu") {
    return unsupported("gemma3 hidden_activation '", activation, "' is not supported; expected gelu_pytorch_tanh");
  }
  SO_ASSIGN_OR_RETURN(double scalar, m.get_float_or("query_pre_attn_scalar", double(c.head_dim)));
  if (!(scalar > 0.0) || !std::isfinite(scalar)) {
    return format_error("config.json query_pre_attn_scalar is ", scalar, "; expected a positive number");
  }
  c.attention_scale = float(1.0 / std::sqrt(scalar));
  SO_ASSIGN_OR_RETURN(double local_base, m.get_float_or("rope_local_base_freq", 10000.0));
  c.sliding_rope_base = float(local_base);
  SO_ASSIGN_OR_RETURN(int64_t window, m.get_int_or("sliding_window", 0));
  if (window < 0 || window > (int64_t(1) << 24)) return format_error("config.json sliding_window is ", window);
  c.sliding_window = int(window);
  SO_ASSIGN_OR_RETURN(int64_t pattern, m.get_int_or("sliding_window_pattern", 6));
  std::vector<std::string> layer_types;
  if (m.contains("layer_types")) {
    SO_ASSIGN_OR_RETURN(layer_types, m.get_string_array("layer_types"));
  }
  if (!layer_types.empty() && int(layer_types.size()) != c.n_layers) {
    return format_error("config.json layer_types has ", layer_types.size(), " entries for ", c.n_layers, " layers");
  }
  for (int layer = 0; layer < c.n_layers; ++layer) {
    const bool slides = layer_types.empty() ? pattern > 0 && layer % pattern < pattern - 1
                                            : layer_types[layer] == "sliding_attention";
    c.sliding_layers.push_back(window > 0 && slides);
  }
  for (const char* key : {"final_logit_softcapping", "attn_logit_softcapping"}) {
    SO_ASSIGN_OR_RETURN(double cap, m.get_float_or(key, 0.0));
    if (cap != 0.0) return unsupported("config.json ", key, " (", cap, ") is not supported");
  }
  return Status::Ok();
}

Result<ModelConfig> from_hf_config(const ModelFile& file) {
  const Metadata& m = file.metadata;
  SO_ASSIGN_OR_RETURN(std::string model_type, m.get_string_or("model_type", ""));
  ModelConfig c;
  if (model_type == "llama" || model_type == "mistral") {
    c.arch = Architecture::kLlama;
  } else if (model_type == "qwen2") {
    c.arch = Architecture::kQwen2;
  } else if (model_type == "mixtral") {
    c.arch = Architecture::kMixtral;
  } else if (model_type == "qwen3" || model_type == "qwen3_moe") {
    c.arch = model_type == "qwen3" ? Architecture::kQwen3 : Architecture::kQwen3Moe;
  } else if (model_type == "gemma3_text") {
    c.arch = Architecture::kGemma3;
  } else if (model_type == "gpt_oss") {
    c.arch = Architecture::kGptOss;
  } else if (model_type == "deepseek_v2" || model_type == "deepseek_v3") {
    c.arch = Architecture::kDeepseek2;
  } else {
    return unsupported("config.json model_type '", model_type, "' is not supported; supported: llama, mistral, ",
                       "qwen2, mixtral, qwen3, qwen3_moe, gemma3_text, gpt_oss, deepseek_v2 and deepseek_v3",
                       model_type == "gemma3" ? " (for Gemma 3 with vision, use its text model's config)" : "");
  }
  c.name = model_type;
  SO_ASSIGN_OR_RETURN(int64_t n_layers, m.get_int("num_hidden_layers"));
  SO_ASSIGN_OR_RETURN(int64_t dim, m.get_int("hidden_size"));
  const std::string ffn_key = c.arch == Architecture::kQwen3Moe || c.arch == Architecture::kDeepseek2
                                  ? "moe_intermediate_size"
                                  : "intermediate_size";
  SO_ASSIGN_OR_RETURN(int64_t ffn_dim, m.get_int(ffn_key));
  SO_ASSIGN_OR_RETURN(int64_t n_heads, m.get_int("num_attention_heads"));
  SO_ASSIGN_OR_RETURN(int64_t n_kv_heads, m.get_int_or("num_key_value_heads", n_heads));
  SO_ASSIGN_OR_RETURN(int64_t n_vocab, m.get_int("vocab_size"));
  SO_TRY(check_positive("layers", n_layers, "num_hidden_layers"));
  SO_TRY(check_positive("width", dim, "hidden_size"));
  SO_TRY(check_positive("FFN width", ffn_dim, ffn_key));
  SO_TRY(check_positive("heads", n_heads, "num_attention_heads"));
  SO_TRY(check_positive("kv heads", n_kv_heads, "num_key_value_heads"));
  SO_TRY(check_positive("vocabulary", n_vocab, "vocab_size"));
  SO_ASSIGN_OR_RETURN(int64_t head_dim, m.get_int_or("head_dim", dim / n_heads));
  SO_ASSIGN_OR_RETURN(int64_t n_ctx, m.get_int_or("max_position_embeddings", 4096));
  SO_ASSIGN_OR_RETURN(double eps, m.get_float_or("rms_norm_eps", 1e-6));
  SO_ASSIGN_OR_RETURN(double theta, m.get_float_or("rope_theta", 10000.0));
  SO_ASSIGN_OR_RETURN(bool tied, m.get_bool_or("tie_word_embeddings", false));
  SO_TRY(check_positive("context length", n_ctx, "max_position_embeddings"));
  SO_TRY(check_positive("head size", head_dim, "head_dim"));
  c.n_layers = int(n_layers);
  c.dim = int(dim);
  c.ffn_dim = int(ffn_dim);
  c.n_heads = int(n_heads);
  c.n_kv_heads = int(n_kv_heads);
  c.head_dim = int(head_dim);
  c.n_vocab = int(n_vocab);
  c.n_ctx_train = int(n_ctx);
  c.rms_eps = float(eps);
  c.rope.n_rot = int(head_dim);
  c.rope.theta_base = float(theta);
  // note: HF checkpoints keep q_proj/k_proj unpermuted and rotate halves (rotate_half),
  // which is NeoX-style rope for every family.
  c.rope.style = RopeStyle::kNeox;
  c.tied_embeddings = tied || file.tensors.find("lm_head.weight") == nullptr;
  set_family_traits(c);
  if (c.arch == Architecture::kMixtral) {
    SO_ASSIGN_OR_RETURN(int64_t n_experts, m.get_int("num_local_experts"));
    SO_ASSIGN_OR_RETURN(int64_t used, m.get_int("num_experts_per_tok"));
    c.n_experts = int(n_experts);
    c.n_experts_used = int(used);
  } else if (c.arch == Architecture::kQwen3Moe) {
    SO_TRY(qwen3_moe_from_hf(m, c));
  } else if (c.arch == Architecture::kGemma3) {
    SO_TRY(gemma3_from_hf(m, c));
  } else if (c.arch == Architecture::kGptOss) {
    SO_ASSIGN_OR_RETURN(int64_t n_experts, m.get_int("num_local_experts"));
    SO_ASSIGN_OR_RETURN(int64_t used, m.get_int("num_experts_per_tok"));
    SO_ASSIGN_OR_RETURN(int64_t window, m.get_int("sliding_window"));
    c.n_experts = int(n_experts);
    c.n_experts_used = int(used);
    SO_TRY(gpt_oss_layers(window, 2, c));
  }
  // rope_scaling: {"type"|"rope_type": linear|yarn|llama3|default, factor, ...}
  std::string scaling = "none";
  if (auto t = m.get_string("rope_scaling.rope_type"); t.ok()) scaling = *t;
  else if (auto t2 = m.get_string("rope_scaling.type"); t2.ok()) scaling = *t2;
  if (scaling != "none" && scaling != "default") SO_TRY(check_scaling_factor(m, "rope_scaling.factor", scaling));
  SO_ASSIGN_OR_RETURN(double factor, m.get_float_or("rope_scaling.factor", 1.0));
  SO_ASSIGN_OR_RETURN(int64_t n_ctx_orig, m.get_int_or("rope_scaling.original_max_position_embeddings", n_ctx));
  SO_TRY(check_positive("original context length", n_ctx_orig, "rope_scaling.original_max_position_embeddings"));
  c.rope.n_ctx_orig = int(n_ctx_orig);
  c.rope.factor = float(factor);
  if (scaling == "linear") {
    c.rope.scaling = RopeScaling::kLinear;
  } else if (scaling == "yarn") {
    c.rope.scaling = RopeScaling::kYarn;
    SO_ASSIGN_OR_RETURN(double beta_fast, m.get_float_or("rope_scaling.beta_fast", 32.0));
    SO_ASSIGN_OR_RETURN(double beta_slow, m.get_float_or("rope_scaling.beta_slow", 1.0));
    c.rope.yarn_beta_fast = float(beta_fast);
    c.rope.yarn_beta_slow = float(beta_slow);
  } else if (scaling == "llama3") {
    c.rope.scaling = RopeScaling::kLlama3;
    SO_ASSIGN_OR_RETURN(double low, m.get_float_or("rope_scaling.low_freq_factor", 1.0));
    SO_ASSIGN_OR_RETURN(double high, m.get_float_or("rope_scaling.high_freq_factor", 4.0));
    c.rope.llama3_low_freq_factor = float(low);
    c.rope.llama3_high_freq_factor = float(high);
  } else if (scaling != "none" && scaling != "default") {
    return unsupported("rope_scaling type '", scaling, "' is not supported; supported: linear, yarn, llama3");
  } else {
    c.rope.factor = 1.0f;
  }
  if (c.arch == Architecture::kDeepseek2) SO_TRY(deepseek2_from_hf(m, c));
  SO_TRY(validate(c));
  return c;
}

}  // namespace

Result<ModelConfig> model_config_from_file(const ModelFile& file) {
  auto config = file.format == ModelFormat::kGguf ? from_gguf(file) : from_hf_config(file);
  if (!config.ok()) return config.status().with_context(str_cat("reading the model configuration of '", file.path, "'"));
  return config;
}

std::vector<float> llama3_rope_freq_factors(const RopeConfig& rope) {
  // Wavelengths longer than n_ctx_orig/low_freq_factor are slowed by `factor`, shorter than
  // n_ctx_orig/high_freq_factor kept, and the band between interpolated smoothly.
  std::vector<float> factors(rope.n_rot / 2);
  const double low_wavelength = rope.n_ctx_orig / rope.llama3_low_freq_factor;
  const double high_wavelength = rope.n_ctx_orig / rope.llama3_high_freq_factor;
  for (int i = 0; i < rope.n_rot / 2; ++i) {
    const double frequency = 1.0 / std::pow(double(rope.theta_base), 2.0 * i / rope.n_rot);
    const double wavelength = 2.0 * M_PI / frequency;
    if (wavelength < high_wavelength) {
      factors[i] = 1.0f;
    } else if (wavelength > low_wavelength) {
      factors[i] = rope.factor;
    } else {
      const double smooth = (rope.n_ctx_orig / wavelength - rope.llama3_low_freq_factor) /
                            (rope.llama3_high_freq_factor - rope.llama3_low_freq_factor);
      factors[i] = float(1.0 / ((1.0 - smooth) / rope.factor + smooth));
    }
  }
  return factors;
}

}  // namespace so
