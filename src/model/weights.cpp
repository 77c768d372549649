#include "model/weights.h"

#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include "base/check.h"
#include "tensor/blocks.h"
#include "tensor/quants.h"

namespace so {
namespace {

// Canonical roles and their names in each format. {L}: layer, {E}: expert.
struct WeightName {
  const char* gguf;
  const char* hf;
};
constexpr WeightName kTokenEmbedding{"token_embd.weight", "model.embed_tokens.weight"};
constexpr WeightName kOutputNorm{"output_norm.weight", "model.norm.weight"};
constexpr WeightName kOutput{"output.weight", "lm_head.weight"};
constexpr WeightName kRopeFreqs{"rope_freqs.weight", nullptr};
constexpr WeightName kAttnNorm{"blk.{L}.attn_norm.weight", "model.layers.{L}.input_layernorm.weight"};
constexpr WeightName kAttnQ{"blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight"};
constexpr WeightName kAttnK{"blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight"};
constexpr WeightName kAttnV{"blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight"};
constexpr WeightName kAttnOutput{"blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight"};
constexpr WeightName kAttnQBias{"blk.{L}.attn_q.bias", "model.layers.{L}.self_attn.q_proj.bias"};
constexpr WeightName kAttnKBias{"blk.{L}.attn_k.bias", "model.layers.{L}.self_attn.k_proj.bias"};
constexpr WeightName kAttnVBias{"blk.{L}.attn_v.bias", "model.layers.{L}.self_attn.v_proj.bias"};
constexpr WeightName kFfnNorm{"blk.{L}.ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight"};
constexpr WeightName kQNorm{"blk.{L}.attn_q_norm.weight", "model.layers.{L}.self_attn.q_norm.weight"};
constexpr WeightName kKNorm{"blk.{L}.attn_k_norm.weight", "model.layers.{L}.self_attn.k_norm.weight"};
// Gemma's four norms; its HF post_attention_layernorm is the attention output's, not the FFN input's.
constexpr WeightName kGemmaPostAttnNorm{"blk.{L}.post_attention_norm.weight",
                                        "model.layers.{L}.post_attention_layernorm.weight"};
constexpr WeightName kGemmaFfnNorm{"blk.{L}.ffn_norm.weight", "model.layers.{L}.pre_feedforward_layernorm.weight"};
constexpr WeightName kGemmaPostFfnNorm{"blk.{L}.post_ffw_norm.weight",
                                       "model.layers.{L}.post_feedforward_layernorm.weight"};
constexpr WeightName kFfnGate{"blk.{L}.ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight"};
constexpr WeightName kFfnUp{"blk.{L}.ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight"};
constexpr WeightName kFfnDown{"blk.{L}.ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight"};
constexpr WeightName kRouter{"blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.block_sparse_moe.gate.weight"};
// GGUF merges experts into one 3-D tensor; HF keeps one tensor per expert.
constexpr WeightName kExpertGate{"blk.{L}.ffn_gate_exps.weight", "model.layers.{L}.block_sparse_moe.experts.{E}.w1.weight"};
constexpr WeightName kExpertDown{"blk.{L}.ffn_down_exps.weight", "model.layers.{L}.block_sparse_moe.experts.{E}.w2.weight"};
constexpr WeightName kExpertUp{"blk.{L}.ffn_up_exps.weight", "model.layers.{L}.block_sparse_moe.experts.{E}.w3.weight"};
// gpt-oss (GGUF only: its checkpoints keep experts as MXFP4 blocks with gate and up interleaved).
// gpt-oss. Its checkpoints keep the experts as MXFP4 blocks and scales with gate and up rows
// interleaved (see WeightMapper::gpt_oss_experts); the GGUF converter splits and repacks them.
constexpr WeightName kAttnOutputBias{"blk.{L}.attn_output.bias", "model.layers.{L}.self_attn.o_proj.bias"};
constexpr WeightName kAttnSinks{"blk.{L}.attn_sinks.weight", "model.layers.{L}.self_attn.sinks"};
constexpr WeightName kGptOssFfnNorm{"blk.{L}.post_attention_norm.weight", "model.layers.{L}.post_attention_layernorm.weight"};
constexpr WeightName kGptOssRouter{"blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.mlp.router.weight"};
constexpr WeightName kRouterBias{"blk.{L}.ffn_gate_inp.bias", "model.layers.{L}.mlp.router.bias"};
constexpr WeightName kExpertGateBias{"blk.{L}.ffn_gate_exps.bias", nullptr};
constexpr WeightName kExpertUpBias{"blk.{L}.ffn_up_exps.bias", nullptr};
constexpr WeightName kExpertDownBias{"blk.{L}.ffn_down_exps.bias", "model.layers.{L}.mlp.experts.down_proj_bias"};
constexpr WeightName kGptOssGateUpBias{nullptr, "model.layers.{L}.mlp.experts.gate_up_proj_bias"};
// Qwen3-MoE's HF names (GGUF's are Mixtral's).
constexpr WeightName kQwenRouter{"blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.mlp.gate.weight"};
constexpr WeightName kQwenExpertGate{"blk.{L}.ffn_gate_exps.weight", "model.layers.{L}.mlp.experts.{E}.gate_proj.weight"};
constexpr WeightName kQwenExpertDown{"blk.{L}.ffn_down_exps.weight", "model.layers.{L}.mlp.experts.{E}.down_proj.weight"};
constexpr WeightName kQwenExpertUp{"blk.{L}.ffn_up_exps.weight", "model.layers.{L}.mlp.experts.{E}.up_proj.weight"};

// DeepSeek's latent attention and its MoE extras. HF keeps kv_b_proj whole (as do GGUF files
// converted before absorbed MLA); newer GGUF files split it per head into k_b (transposed) and v_b.
constexpr WeightName kAttnQA{"blk.{L}.attn_q_a.weight", "model.layers.{L}.self_attn.q_a_proj.weight"};
constexpr WeightName kAttnQANorm{"blk.{L}.attn_q_a_norm.weight", "model.layers.{L}.self_attn.q_a_layernorm.weight"};
constexpr WeightName kAttnQB{"blk.{L}.attn_q_b.weight", "model.layers.{L}.self_attn.q_b_proj.weight"};
constexpr WeightName kAttnKvA{"blk.{L}.attn_kv_a_mqa.weight", "model.layers.{L}.self_attn.kv_a_proj_with_mqa.weight"};
constexpr WeightName kAttnKvANorm{"blk.{L}.attn_kv_a_norm.weight", "model.layers.{L}.self_attn.kv_a_layernorm.weight"};
constexpr WeightName kAttnKB{"blk.{L}.attn_k_b.weight", nullptr};
constexpr WeightName kAttnVB{"blk.{L}.attn_v_b.weight", nullptr};
constexpr WeightName kAttnKvB{"blk.{L}.attn_kv_b.weight", "model.layers.{L}.self_attn.kv_b_proj.weight"};
constexpr WeightName kExpertSelectionBias{"blk.{L}.exp_probs_b.bias", "model.layers.{L}.mlp.gate.e_score_correction_bias"};
constexpr WeightName kSharedGate{"blk.{L}.ffn_gate_shexp.weight", "model.layers.{L}.mlp.shared_experts.gate_proj.weight"};
constexpr WeightName kSharedUp{"blk.{L}.ffn_up_shexp.weight", "model.layers.{L}.mlp.shared_experts.up_proj.weight"};
constexpr WeightName kSharedDown{"blk.{L}.ffn_down_shexp.weight", "model.layers.{L}.mlp.shared_experts.down_proj.weight"};

std::string expand(const char* pattern, int layer, int expert) {
  std::string name = pattern;
  for (auto [key, value] : {std::pair{"{L}", layer}, std::pair{"{E}", expert}}) {
    if (auto at = name.find(key); at != std::string::npos) name.replace(at, 3, std::to_string(value));
  }
  return name;
}

// Finds and checks tensors; or, with `record`, only lists the HF tensors a config calls for.
class WeightMapper {
 public:
  WeightMapper(const ModelFile& file, ModelWeights& weights, std::vector<ExpectedTensor>* record = nullptr)
      : file_(file), weights_(weights), gguf_(file.format == ModelFormat::kGguf), record_(record) {}

  const TensorInfo* find(const WeightName& name, int layer = 0, int expert = 0) const {
    const char* pattern = gguf_ ? name.gguf : name.hf;
    return pattern ? file_.tensors.find(expand(pattern, layer, expert)) : nullptr;
  }

  bool gguf() const { return gguf_; }
  bool recording() const { return record_ != nullptr; }

  std::string name_of(const WeightName& name, int layer = 0, int expert = 0) const {
    const char* pattern = gguf_ ? name.gguf : name.hf;
    return pattern ? expand(pattern, layer, expert) : "";
  }

  // A matmul weight of the given shape (outer to inner).
  Result<TensorView> matrix(const WeightName& name, Shape expected, int layer = 0, int expert = 0) const {
    if (record_) {
      record_->push_back({name_of(name, layer, expert), expected});
      return TensorView{};
    }
    const TensorInfo* info = find(name, layer, expert);
    if (!info) return missing(name_of(name, layer, expert));
    SO_TRY(check_shape(*info, expected));
    if (!dtype_info(info->dtype).weight_supported) {
      return unsupported("tensor '", info->name, "' is ", dtype_name(info->dtype),
                         ", which this engine cannot compute with; supported: ", supported_weight_dtypes(),
                         ". Re-quantize the model to one of those");
    }
    return info->view();
  }

  // A norm or bias vector (or a table of them: shape (rows, length)) as f32. hf_shift: added
  // to HF values (Gemma stores norms as w for a scale of 1 + w; its GGUF converter stores 1 + w).
  Result<const float*> vector(const WeightName& name, int64_t length, int layer = 0, float hf_shift = 0.0f,
                              int64_t rows = 0) {
    const Shape shape = rows > 0 ? Shape{rows, length} : Shape{length};
    if (rows > 0) length *= rows;
    if (record_) {
      record_->push_back({name_of(name, layer), shape});
      return nullptr;
    }
    const TensorInfo* info = find(name, layer);
    if (!info) return missing(name_of(name, layer));
    SO_TRY(check_shape(*info, shape));
    const float shift = gguf_ ? 0.0f : hf_shift;
    if (info->dtype == DType::kF32 && shift == 0.0f) return reinterpret_cast<const float*>(info->data);
    if (info->dtype != DType::kF32 && info->dtype != DType::kF16 && info->dtype != DType::kBF16) {
      return unsupported("vector tensor '", info->name, "' is ", dtype_name(info->dtype), "; expected F32, F16 or BF16");
    }
    // note: tensors that alias one source (dummy weights) share its copy, as they share the source.
    const float*& made = vectors_made_[{info->data, info->dtype, length, shift}];
    if (made) return made;
    AlignedBuffer copy(length * sizeof(float));
    dequantize_row(info->dtype, info->data, copy.as<float>(), length);
    for (int64_t i = 0; i < length; ++i) copy.as<float>()[i] += shift;
    made = copy.as<float>();
    weights_.owned_vectors.push_back(std::move(copy));
    return made;
  }

  // Views of each head's (rows, cols) matrix in a (n_heads, rows, cols) tensor.
  Result<std::vector<TensorView>> heads(const WeightName& name, int layer, int n_heads, Shape head_shape) const {
    SO_ASSIGN_OR_RETURN(TensorView merged, matrix(name, Shape{n_heads, head_shape[0], head_shape[1]}, layer));
    if (record_) return std::vector<TensorView>(size_t(n_heads));
    std::vector<TensorView> views;
    const int64_t head_bytes = head_shape[0] * dtype_row_bytes(merged.dtype, head_shape[1]);
    for (int h = 0; h < n_heads; ++h) {
      views.push_back({merged.dtype, head_shape, static_cast<const uint8_t*>(merged.data) + h * head_bytes});
    }
    return views;
  }

  // MLA's per-head k_b and v_b from a whole kv_b (n_heads * (nope + v), kv_lora): v_b are
  // views of its rows; k_b are its nope rows transposed, copied (in f32 unless 16-bit).
  Status split_kv_b(const WeightName& name, int layer, const ModelConfig& c, LayerWeights& w) {
    const int nope = c.qk_nope_dim, v = c.v_head_dim, rank = c.kv_lora_rank;
    SO_ASSIGN_OR_RETURN(TensorView kv_b, matrix(name, Shape{int64_t(c.n_heads) * (nope + v), rank}, layer));
    w.wk_b.assign(size_t(c.n_heads), TensorView{});
    w.wv_b.assign(size_t(c.n_heads), TensorView{});
    if (record_) return Status::Ok();
    const int64_t row_bytes = dtype_row_bytes(kv_b.dtype, rank);
    const auto* base = static_cast<const uint8_t*>(kv_b.data);
    std::vector<TensorView>& made_k_b = k_b_made_[kv_b.data];  // shared as vector copies are
    const bool keep = kv_b.dtype == DType::kF16 || kv_b.dtype == DType::kBF16 || kv_b.dtype == DType::kF32;
    const DType copy_dtype = keep ? kv_b.dtype : DType::kF32;
    const int64_t element = dtype_row_bytes(copy_dtype, 1);
    std::vector<float> rows(size_t(nope) * rank);
    for (int h = 0; h < c.n_heads; ++h) {
      const uint8_t* head = base + int64_t(h) * (nope + v) * row_bytes;
      w.wv_b[size_t(h)] = {kv_b.dtype, Shape{v, rank}, head + nope * row_bytes};
      if (made_k_b.size() == size_t(c.n_heads)) continue;
      AlignedBuffer copy(size_t(rank) * nope * element);
      auto* out = copy.as<uint8_t>();
      if (keep) {  // an element-wise transpose keeps the checkpoint's values bit for bit
        for (int i = 0; i < nope; ++i) {
          for (int r = 0; r < rank; ++r) std::memcpy(out + (int64_t(r) * nope + i) * element, head + i * row_bytes + r * element, size_t(element));
        }
      } else {
        for (int i = 0; i < nope; ++i) dequantize_row(kv_b.dtype, head + i * row_bytes, rows.data() + int64_t(i) * rank, rank);
        for (int i = 0; i < nope; ++i) {
          for (int r = 0; r < rank; ++r) reinterpret_cast<float*>(out)[int64_t(r) * nope + i] = rows[size_t(i) * rank + r];
        }
      }
      w.wk_b[size_t(h)] = {copy_dtype, Shape{rank, nope}, copy.data()};
      weights_.owned_vectors.push_back(std::move(copy));
    }
    if (made_k_b.size() == size_t(c.n_heads)) {
      w.wk_b = made_k_b;
    } else {
      made_k_b = w.wk_b;
    }
    return Status::Ok();
  }

  // gpt-oss checkpoints' experts: MXFP4 blocks (E, rows, cols / 32, 16) and E8M0 scales (E, rows, cols / 32),
  // gate and up rows interleaved in one tensor (and bias), byte j of a block holding elements 2j (low nibble) and
  // 2j + 1. Repacked into GGUF's MXFP4 blocks (scale, then element i low and i + 16 high in byte i) in owned
  // memory, gate and up apart.
  Status gpt_oss_experts(int layer, const ModelConfig& c, LayerWeights& w) {
    const int64_t n_experts = c.n_experts, ffn = c.ffn_dim, dim = c.dim;
    const std::string prefix = "model.layers." + std::to_string(layer) + ".mlp.experts.";
    auto bytes = [&](const std::string& name, Shape shape) -> Result<const uint8_t*> {
      const TensorInfo* info = file_.tensors.find(prefix + name);
      if (!info) {
        return missing(prefix + name, "only gpt-oss checkpoints with MXFP4 experts (as released) are read; convert "
                                      "others with llama.cpp's convert_hf_to_gguf.py");
      }
      SO_TRY(check_shape(*info, shape));
      if (info->dtype != DType::kI8) return format_error("tensor '", info->name, "' should be U8 (MXFP4 bytes)");
      return static_cast<const uint8_t*>(info->data);
    };
    if (ffn % 32 != 0 || dim % 32 != 0) return format_error("gpt-oss widths must be multiples of 32 for MXFP4");
    SO_ASSIGN_OR_RETURN(const uint8_t* gate_up_blocks, bytes("gate_up_proj_blocks", Shape{n_experts, 2 * ffn, dim / 32, 16}));
    SO_ASSIGN_OR_RETURN(const uint8_t* gate_up_scales, bytes("gate_up_proj_scales", Shape{n_experts, 2 * ffn, dim / 32}));
    SO_ASSIGN_OR_RETURN(const uint8_t* down_blocks, bytes("down_proj_blocks", Shape{n_experts, dim, ffn / 32, 16}));
    SO_ASSIGN_OR_RETURN(const uint8_t* down_scales, bytes("down_proj_scales", Shape{n_experts, dim, ffn / 32}));
    // rows: (expert, row) pairs in output order, taken from every `stride`-th source row from `first`.
    auto repack = [&](const uint8_t* blocks, const uint8_t* scales, int64_t rows, int64_t cols, int64_t source_rows,
                      int first, int stride, std::vector<TensorView>& views) {
      const int64_t n_blocks = cols / 32, row_bytes = n_blocks * int64_t(sizeof(BlockMXFP4));
      AlignedBuffer buffer(size_t(n_experts * rows * row_bytes));
      auto* out = buffer.as<BlockMXFP4>();
      for (int64_t e = 0; e < n_experts; ++e) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t source = e * source_rows + first + r * stride;
          for (int64_t b = 0; b < n_blocks; ++b, ++out) {
            const uint8_t* q = blocks + (source * n_blocks + b) * 16;
            out->e = scales[source * n_blocks + b];
            auto element = [q](int i) { return (i % 2 == 0 ? q[i / 2] : q[i / 2] >> 4) & 0x0F; };
            for (int i = 0; i < 16; ++i) out->qs[i] = uint8_t(element(i) | (element(i + 16) << 4));
          }
        }
      }
      views.clear();
      for (int64_t e = 0; e < n_experts; ++e) {
        views.push_back({DType::kMXFP4, Shape{rows, cols}, buffer.as<uint8_t>() + e * rows * row_bytes});
      }
      weights_.owned_vectors.push_back(std::move(buffer));
    };
    repack(gate_up_blocks, gate_up_scales, ffn, dim, 2 * ffn, 0, 2, w.expert_gate);
    repack(gate_up_blocks, gate_up_scales, ffn, dim, 2 * ffn, 1, 2, w.expert_up);
    repack(down_blocks, down_scales, dim, ffn, dim, 0, 1, w.expert_down);
    // The interleaved gate/up bias, split.
    SO_ASSIGN_OR_RETURN(const float* both, vector(kGptOssGateUpBias, 2 * ffn, layer, 0.0f, n_experts));
    AlignedBuffer split(size_t(2 * n_experts * ffn) * sizeof(float));
    float* gate_bias = split.as<float>();
    float* up_bias = gate_bias + n_experts * ffn;
    for (int64_t i = 0; i < n_experts * ffn; ++i) {
      gate_bias[i] = both[2 * i];
      up_bias[i] = both[2 * i + 1];
    }
    w.expert_gate_bias = gate_bias;
    w.expert_up_bias = up_bias;
    weights_.owned_vectors.push_back(std::move(split));
    return Status::Ok();
  }

  // Splits a merged GGUF expert tensor (n_experts, rows, cols) or collects HF per-expert ones.
  Result<std::vector<TensorView>> experts(const WeightName& name, int layer, int n_experts, Shape expert_shape) const {
    std::vector<TensorView> views;
    if (gguf_ && record_) {
      record_->push_back({name_of(name, layer), Shape{n_experts, expert_shape[0], expert_shape[1]}});
      return std::vector<TensorView>(size_t(n_experts));
    }
    if (gguf_) {
      const TensorInfo* info = find(name, layer);
      if (!info) {
        return missing(name_of(name, layer), "older GGUF files store experts as separate tensors; re-convert "
                                             "the model with a recent llama.cpp");
      }
      SO_ASSIGN_OR_RETURN(TensorView merged, matrix(name, Shape{n_experts, expert_shape[0], expert_shape[1]}, layer));
      const int64_t expert_bytes = expert_shape[0] * dtype_row_bytes(merged.dtype, expert_shape[1]);
      for (int e = 0; e < n_experts; ++e) {
        views.push_back({merged.dtype, expert_shape, static_cast<const uint8_t*>(merged.data) + e * expert_bytes});
      }
      return views;
    }
    for (int e = 0; e < n_experts; ++e) {
      SO_ASSIGN_OR_RETURN(TensorView view, matrix(name, expert_shape, layer, e));
      views.push_back(view);
    }
    return views;
  }

 private:
  Status missing(const std::string& tensor, const std::string& hint = "") const {
    return format_error("tensor '", tensor, "' is missing from '", file_.path, "'; ",
                        hint.empty() ? "the file does not match its own configuration" : hint);
  }

  static Status check_shape(const TensorInfo& info, const Shape& expected) {
    if (info.shape == expected) return Status::Ok();
    return format_error("tensor '", info.name, "' has shape ", info.shape.to_string(), ", expected ",
                        expected.to_string(), " from the model's configuration; the file is inconsistent");
  }

  const ModelFile& file_;
  ModelWeights& weights_;
  bool gguf_;
  std::vector<ExpectedTensor>* record_;
  // f32 copies made, by source: (data, dtype, length, shift).
  std::map<std::tuple<const void*, DType, int64_t, float>, const float*> vectors_made_;
  std::map<const void*, std::vector<TensorView>> k_b_made_;  // by the kv_b they were cut from
};

Status map_attention(WeightMapper& mapper, const ModelConfig& c, int layer, LayerWeights& w, float norm_shift);
Status map_ffn(WeightMapper& mapper, const ModelConfig& c, int layer, LayerWeights& w, float norm_shift);

Status map_latent_attention(WeightMapper& mapper, const ModelConfig& c, int layer, LayerWeights& w) {
  const int64_t q_rows = int64_t(c.n_heads) * c.qk_head_dim();
  if (c.q_lora_rank > 0) {
    SO_ASSIGN_OR_RETURN(w.wq_a, mapper.matrix(kAttnQA, Shape{c.q_lora_rank, c.dim}, layer));
    SO_ASSIGN_OR_RETURN(w.q_a_norm, mapper.vector(kAttnQANorm, c.q_lora_rank, layer));
    SO_ASSIGN_OR_RETURN(w.wq, mapper.matrix(kAttnQB, Shape{q_rows, c.q_lora_rank}, layer));
  } else {
    SO_ASSIGN_OR_RETURN(w.wq, mapper.matrix(kAttnQ, Shape{q_rows, c.dim}, layer));
  }
  SO_ASSIGN_OR_RETURN(w.wkv_a, mapper.matrix(kAttnKvA, Shape{c.kv_lora_rank + c.rope.n_rot, c.dim}, layer));
  SO_ASSIGN_OR_RETURN(w.kv_a_norm, mapper.vector(kAttnKvANorm, c.kv_lora_rank, layer));
  if (mapper.gguf() && (mapper.recording() || mapper.find(kAttnKB, layer))) {
    SO_ASSIGN_OR_RETURN(w.wk_b, mapper.heads(kAttnKB, layer, c.n_heads, Shape{c.kv_lora_rank, c.qk_nope_dim}));
    SO_ASSIGN_OR_RETURN(w.wv_b, mapper.heads(kAttnVB, layer, c.n_heads, Shape{c.v_head_dim, c.kv_lora_rank}));
  } else {
    SO_TRY(mapper.split_kv_b(kAttnKvB, layer, c, w));
  }
  SO_ASSIGN_OR_RETURN(w.wo, mapper.matrix(kAttnOutput, Shape{c.dim, c.attention_out_dim()}, layer));
  return Status::Ok();
}

Status map_layer(WeightMapper& mapper, const ModelConfig& c, int layer, LayerWeights& w) {
  const bool gemma = c.arch == Architecture::kGemma3;
  const float norm_shift = gemma ? 1.0f : 0.0f;
  SO_ASSIGN_OR_RETURN(w.attn_norm, mapper.vector(kAttnNorm, c.dim, layer, norm_shift));
  if (c.is_mla()) {
    SO_TRY(map_latent_attention(mapper, c, layer, w));
  } else {
    SO_TRY(map_attention(mapper, c, layer, w, norm_shift));
  }
  return map_ffn(mapper, c, layer, w, norm_shift);
}

Status map_attention(WeightMapper& mapper, const ModelConfig& c, int layer, LayerWeights& w, float norm_shift) {
  SO_ASSIGN_OR_RETURN(w.wq, mapper.matrix(kAttnQ, Shape{c.q_dim(), c.dim}, layer));
  SO_ASSIGN_OR_RETURN(w.wk, mapper.matrix(kAttnK, Shape{c.kv_dim(), c.dim}, layer));
  SO_ASSIGN_OR_RETURN(w.wv, mapper.matrix(kAttnV, Shape{c.kv_dim(), c.dim}, layer));
  SO_ASSIGN_OR_RETURN(w.wo, mapper.matrix(kAttnOutput, Shape{c.dim, c.q_dim()}, layer));
  if (c.qkv_bias) {
    SO_ASSIGN_OR_RETURN(w.bq, mapper.vector(kAttnQBias, c.q_dim(), layer));
    SO_ASSIGN_OR_RETURN(w.bk, mapper.vector(kAttnKBias, c.kv_dim(), layer));
    SO_ASSIGN_OR_RETURN(w.bv, mapper.vector(kAttnVBias, c.kv_dim(), layer));
  }
  if (c.out_bias) {
    SO_ASSIGN_OR_RETURN(w.bo, mapper.vector(kAttnOutputBias, c.dim, layer));
  }
  if (c.attention_sinks) {
    SO_ASSIGN_OR_RETURN(w.attn_sinks, mapper.vector(kAttnSinks, c.n_heads, layer));
  }
  if (c.qk_norm) {
    SO_ASSIGN_OR_RETURN(w.q_norm, mapper.vector(kQNorm, c.head_dim, layer, norm_shift));
    SO_ASSIGN_OR_RETURN(w.k_norm, mapper.vector(kKNorm, c.head_dim, layer, norm_shift));
  }
  if (c.sandwich_norms) {
    SO_ASSIGN_OR_RETURN(w.post_attn_norm, mapper.vector(kGemmaPostAttnNorm, c.dim, layer, norm_shift));
    SO_ASSIGN_OR_RETURN(w.post_ffn_norm, mapper.vector(kGemmaPostFfnNorm, c.dim, layer, norm_shift));
  }
  return Status::Ok();
}

Status map_ffn(WeightMapper& mapper, const ModelConfig& c, int layer, LayerWeights& w, float norm_shift) {
  const bool gemma = c.arch == Architecture::kGemma3;
  const WeightName& ffn_norm = gemma ? kGemmaFfnNorm : c.arch == Architecture::kGptOss ? kGptOssFfnNorm : kFfnNorm;
  SO_ASSIGN_OR_RETURN(w.ffn_norm, mapper.vector(ffn_norm, c.dim, layer, norm_shift));
  if (c.layer_is_moe(layer)) {
    // note: Qwen3-MoE's and DeepSeek's HF names are the same.
    const bool qwen = c.arch == Architecture::kQwen3Moe || c.arch == Architecture::kDeepseek2;
    const bool gpt_oss = c.arch == Architecture::kGptOss;
    const WeightName& router = qwen ? kQwenRouter : gpt_oss ? kGptOssRouter : kRouter;
    SO_ASSIGN_OR_RETURN(w.router, mapper.matrix(router, Shape{c.n_experts, c.dim}, layer));
    if (gpt_oss && !mapper.gguf()) {
      SO_TRY(mapper.gpt_oss_experts(layer, c, w));
    } else {
      SO_ASSIGN_OR_RETURN(w.expert_gate, mapper.experts(qwen ? kQwenExpertGate : kExpertGate, layer, c.n_experts,
                                                        Shape{c.ffn_dim, c.dim}));
      SO_ASSIGN_OR_RETURN(w.expert_up, mapper.experts(qwen ? kQwenExpertUp : kExpertUp, layer, c.n_experts,
                                                      Shape{c.ffn_dim, c.dim}));
      SO_ASSIGN_OR_RETURN(w.expert_down, mapper.experts(qwen ? kQwenExpertDown : kExpertDown, layer, c.n_experts,
                                                        Shape{c.dim, c.ffn_dim}));
      if (c.moe_biases) {
        SO_ASSIGN_OR_RETURN(w.expert_gate_bias, mapper.vector(kExpertGateBias, c.ffn_dim, layer, 0.0f, c.n_experts));
        SO_ASSIGN_OR_RETURN(w.expert_up_bias, mapper.vector(kExpertUpBias, c.ffn_dim, layer, 0.0f, c.n_experts));
      }
    }
    if (c.moe_biases) {
      SO_ASSIGN_OR_RETURN(w.router_bias, mapper.vector(kRouterBias, c.n_experts, layer));
      SO_ASSIGN_OR_RETURN(w.expert_down_bias, mapper.vector(kExpertDownBias, c.dim, layer, 0.0f, c.n_experts));
    }
    if (c.expert_selection_bias) {
      SO_ASSIGN_OR_RETURN(w.expert_selection_bias, mapper.vector(kExpertSelectionBias, c.n_experts, layer));
    }
    if (c.n_shared_experts > 0) {
      const int64_t shared = c.shared_ffn_dim();
      SO_ASSIGN_OR_RETURN(w.shared_gate, mapper.matrix(kSharedGate, Shape{shared, c.dim}, layer));
      SO_ASSIGN_OR_RETURN(w.shared_up, mapper.matrix(kSharedUp, Shape{shared, c.dim}, layer));
      SO_ASSIGN_OR_RETURN(w.shared_down, mapper.matrix(kSharedDown, Shape{c.dim, shared}, layer));
    }
  } else {
    const int64_t ffn = c.layer_ffn_dim(layer);
    SO_ASSIGN_OR_RETURN(w.w_gate, mapper.matrix(kFfnGate, Shape{ffn, c.dim}, layer));
    SO_ASSIGN_OR_RETURN(w.w_up, mapper.matrix(kFfnUp, Shape{ffn, c.dim}, layer));
    SO_ASSIGN_OR_RETURN(w.w_down, mapper.matrix(kFfnDown, Shape{c.dim, ffn}, layer));
  }
  return Status::Ok();
}

}  // namespace

int64_t LayerWeights::bytes() const {
  int64_t total = 0;
  for (const TensorView* view : {&wq, &wk, &wv, &wo, &wq_a, &wkv_a, &w_gate, &w_up, &w_down, &router, &shared_gate,
                                 &shared_up, &shared_down}) {
    if (view->data) total += view->bytes();
  }
  for (const auto* list : {&expert_gate, &expert_up, &expert_down, &wk_b, &wv_b}) {
    for (const TensorView& view : *list) total += view.bytes();
  }
  return total;
}

int64_t ModelWeights::bytes() const {
  int64_t total = output.bytes();
  for (const LayerWeights& layer : layers) total += layer.bytes();
  return total;
}

namespace {

Status map_weights(WeightMapper& mapper, const ModelFile& file, const ModelConfig& c, ModelWeights& weights) {
  SO_ASSIGN_OR_RETURN(weights.token_embedding, mapper.matrix(kTokenEmbedding, Shape{c.n_vocab, c.dim}));
  SO_ASSIGN_OR_RETURN(weights.output_norm,
                      mapper.vector(kOutputNorm, c.dim, 0, c.arch == Architecture::kGemma3 ? 1.0f : 0.0f));
  if (c.tied_embeddings) {
    weights.output = weights.token_embedding;
  } else {
    SO_ASSIGN_OR_RETURN(weights.output, mapper.matrix(kOutput, Shape{c.n_vocab, c.dim}));
  }
  if (const TensorInfo* freqs = mapper.find(kRopeFreqs)) {
    if (freqs->dtype != DType::kF32 || freqs->shape.elements() != c.rope.n_rot / 2) {
      return format_error("tensor 'rope_freqs.weight' should be F32 with ", c.rope.n_rot / 2, " values, found ",
                          dtype_name(freqs->dtype), " ", freqs->shape.to_string());
    }
    const auto* values = reinterpret_cast<const float*>(freqs->data);
    weights.rope_freq_factors.assign(values, values + c.rope.n_rot / 2);
  } else if (c.rope.scaling == RopeScaling::kLlama3) {
    weights.rope_freq_factors = llama3_rope_freq_factors(c.rope);
  }
  weights.layers.resize(c.n_layers);
  for (int layer = 0; layer < c.n_layers; ++layer) {
    SO_TRY(map_layer(mapper, c, layer, weights.layers[layer]));
  }
  // More layers in the file than the configuration says: the metadata is wrong, and running
  // the first ones alone would give a different model.
  if (const TensorInfo* extra = mapper.find(kAttnNorm, c.n_layers)) {
    return format_error("'", file.path, "' has tensors for more than its ", c.n_layers, " layers (block_count / ",
                        "num_hidden_layers), e.g. '", extra->name, "'; the file's configuration does not match its ",
                        "weights");
  }
  return Status::Ok();
}

}  // namespace

Result<ModelWeights> map_model_weights(const ModelFile& file, const ModelConfig& config) {
  ModelWeights weights;
  WeightMapper mapper(file, weights);
  SO_TRY(map_weights(mapper, file, config, weights));
  return weights;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config, ModelFormat format) {
  ModelFile none;
  none.format = format;
  ModelWeights weights;
  std::vector<ExpectedTensor> tensors;
  WeightMapper mapper(none, weights, &tensors);
  SO_CHECK_OK(map_weights(mapper, none, config, weights));
  return tensors;
}

}  // namespace so
