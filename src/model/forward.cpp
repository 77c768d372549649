#include "model/forward.h"

#include <cmath>
#include <utility>

namespace so {

namespace {

// Workspace slots, each sized for the step's tokens.
enum Slot : int {
  kResidual = 0,  // x    (n_tokens, dim)
  kNormed,        // h    (n_tokens, dim)
  kQuery,         // q    (n_tokens, q_dim)
  kKey,           // k    (n_tokens, kv_dim)
  kValue,         // v    (n_tokens, kv_dim)
  kAttention,     // attn (n_tokens, q_dim)
  kProjected,     // proj (n_tokens, dim)
  kGate,          // gate (n_tokens, ffn_dim)
  kUp,            // up   (n_tokens, ffn_dim)
  kGathered,      // rows kept for the last layer (n_tokens, max(dim, q_dim))
  kGatheredAttention,
  kShared,        // shared experts' output (n_tokens, dim)
  kSlotCount
};

static_assert(kSlotCount == 12, "ModelRunner::kWorkspaceSlots counts the slots");

RopeParams rope_params_for(const ModelConfig& c, const ModelWeights& w) {
  RopeParams rope;
  rope.style = c.rope.style;
  rope.n_rot = c.rope.n_rot;
  rope.theta_base = c.rope.theta_base;
  rope.n_ctx_orig = c.rope.n_ctx_orig;
  if (c.rope.scaling == RopeScaling::kLinear || c.rope.scaling == RopeScaling::kYarn) {
    rope.freq_scale = 1.0f / c.rope.factor;
  }
  if (c.rope.scaling == RopeScaling::kYarn) {
    rope.ext_factor = 1.0f;
    rope.attn_factor = c.rope.yarn_attn_factor;
    rope.beta_fast = c.rope.yarn_beta_fast;
    rope.beta_slow = c.rope.yarn_beta_slow;
  }
  rope.freq_factors = w.rope_freq_factors.empty() ? nullptr : w.rope_freq_factors.data();
  return rope;
}

}  // namespace

KvGeometry kv_geometry_for(const ModelConfig& config, int page_tokens, int n_layers) {
  KvGeometry geometry;
  geometry.n_layers = n_layers < 0 ? config.n_layers : n_layers;
  geometry.n_kv_heads = config.n_kv_heads;
  geometry.head_dim = config.head_dim;
  geometry.page_tokens = page_tokens;
  geometry.dtype = DType::kF16;
  geometry.values_in_keys = config.is_mla();
  return geometry;
}

ModelRunner::ModelRunner(const Model& model, Backend& backend, int n_layers)
    : model_(model), backend_(backend), n_layers_(n_layers < 0 ? model.config.n_layers : n_layers) {
  const ModelConfig& c = model.config;
  SO_CHECK(n_layers_ >= 1 && n_layers_ <= c.n_layers, "a runner needs 1 to ", c.n_layers, " layers, not ", n_layers_);
  rope_ = rope_params_for(c, model.weights);
  sliding_rope_ = rope_;
  if (c.sliding_rope_base > 0.0f) {  // Gemma: its own base, unscaled
    sliding_rope_ = RopeParams{};
    sliding_rope_.style = c.rope.style;
    sliding_rope_.n_rot = c.rope.n_rot;
    sliding_rope_.theta_base = c.sliding_rope_base;
    sliding_rope_.n_ctx_orig = c.rope.n_ctx_orig;
  }
  attention_params_.n_heads = c.n_heads;
  attention_params_.n_kv_heads = c.n_kv_heads;
  attention_params_.head_dim = c.head_dim;
  attention_params_.scale =
      c.attention_scale > 0.0f ? c.attention_scale : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  sliding_attention_params_ = attention_params_;
  sliding_attention_params_.window = c.sliding_window;
}

void ModelRunner::ensure_workspace(int64_t n_tokens, int64_t n_micro, int64_t n_out) {
  // Rows per slot: the residual stream holds every token of the step; the normed rows
  // also feed the head; the gathered rows are the head's; the rest hold one micro-batch.
  const int64_t shared_rows = model_.config.n_shared_experts > 0 ? n_micro : 0;
  const int64_t rows[kSlotCount] = {n_tokens, std::max(n_micro, n_out), n_micro, n_micro, n_micro, n_micro,
                                    n_micro, n_micro, n_micro, n_out, n_out, shared_rows};
  bool enough = !workspace_.empty();
  for (int slot = 0; slot < kSlotCount && enough; ++slot) enough = rows[slot] <= workspace_rows_[slot];
  if (enough) return;
  const ModelConfig& c = model_.config;
  const int64_t width = std::max<int64_t>(c.dim, c.q_dim());
  // The FFN slots also hold latent attention's intermediates (see latent_attention_block).
  const int64_t ffn = c.ffn_scratch_width();
  const int64_t attention = c.attention_scratch_width();
  const int64_t widths[kSlotCount] = {c.dim, c.dim, c.q_dim(), c.kv_dim(), c.kv_dim(), attention, c.dim,
                                      ffn, ffn, width, width, c.dim};
  workspace_.clear();
  for (int slot = 0; slot < kSlotCount; ++slot) {
    const int64_t slot_rows = std::max({rows[slot], workspace_rows_[slot], int64_t(1)});
    auto buffer = backend_.allocate(size_t(slot_rows) * widths[slot] * sizeof(float), MemoryKind::kDevice);
    SO_CHECK_OK(buffer);
    workspace_.push_back(std::move(buffer).value());
    workspace_rows_[slot] = slot_rows;
  }
}

Status ModelRunner::forward(const StepInput& step, const KvGeometry& geometry, float* logits) {
  const ModelConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  const int64_t n_tokens = static_cast<int64_t>(step.tokens.size());
  if (n_tokens == 0) return Status::Ok();
  for (int32_t token : step.tokens) {
    if (token < 0 || token >= c.n_vocab) {
      return invalid_argument("token id ", token, " is outside the vocabulary [0, ", c.n_vocab, ")");
    }
  }

  attention_rows_.clear();
  positions_.clear();
  logit_tokens_.clear();
  int32_t first_token = 0;
  for (const StepRow& row : step.rows) {
    const AttentionRow& kv = row.kv;
    SO_CHECK_EQ(kv.first_token, first_token, "rows must cover the step's tokens in order");
    SO_CHECK_LE(int64_t(kv.kv_start) + kv.n_tokens, int64_t(kv.pages.size()) * geometry.page_tokens);
    if (int64_t(kv.kv_start) + kv.n_tokens > c.n_ctx_train) {
      return out_of_range("a row would reach position ", kv.kv_start + kv.n_tokens, " but the model's context is ",
                          c.n_ctx_train, " tokens; shorten the prompt or lower the token limit");
    }
    attention_rows_.push_back(kv);
    for (int32_t i = 0; i < kv.n_tokens; ++i) positions_.push_back(kv.kv_start + i);
    const int32_t first_logit = row.logits == LogitsWanted::kAll    ? 0
                                : row.logits == LogitsWanted::kLast ? kv.n_tokens - 1
                                                                    : kv.n_tokens;
    for (int32_t i = first_logit; i < kv.n_tokens; ++i) logit_tokens_.push_back(first_token + i);
    first_token += kv.n_tokens;
  }
  SO_CHECK_EQ(int64_t(first_token), n_tokens, "rows must cover the step's tokens");

  const int64_t n_micro = micro_batch_tokens_ > 0 ? std::min<int64_t>(n_tokens, micro_batch_tokens_) : n_tokens;
  ensure_workspace(n_tokens, n_micro, static_cast<int64_t>(logit_tokens_.size()));
  backend_.embedding(w.token_embedding, step.tokens, buffer(kResidual));
  if (c.embedding_scale != 1.0f) backend_.scale(buffer(kResidual), c.embedding_scale, n_tokens * c.dim);
  SO_CHECK_GE(geometry.n_layers, n_layers_, "the KV geometry has fewer layers than the runner");
  for (int layer = 0; layer < n_layers_; ++layer) {
    const bool last = layer + 1 == n_layers_;
    if (layer_source_ == nullptr) {
      forward_layer(layer, w.layers[layer], n_tokens, geometry, last, logit_tokens_);
      continue;
    }
    forward_layer(layer, layer_source_->acquire(layer), n_tokens, geometry, last, logit_tokens_);
    layer_source_->release(layer);
  }
  const int64_t n_out = static_cast<int64_t>(logit_tokens_.size());
  if (n_out > 0) {
    const float* output_norm = layer_source_ && layer_source_->output_norm() ? layer_source_->output_norm() : w.output_norm;
    backend_.rmsnorm(buffer(kResidual), output_norm, c.rms_eps, n_out, c.dim, buffer(kNormed));
    if (layer_source_ != nullptr) {
      output_from_source(n_out, logits);
    } else {
      backend_.matmul(w.output, buffer(kNormed), n_out, logits);
    }
  }
  ++steps_;
  return Status::Ok();
}

void ModelRunner::output_from_source(int64_t n_out, float* logits) {
  const int64_t n_vocab = model_.config.n_vocab;
  for (int chunk = 0; chunk < layer_source_->n_output_chunks(); ++chunk) {
    const OutputChunk output = layer_source_->acquire_output(chunk);
    const int64_t rows = output.weight.shape[0];
    const size_t bytes = size_t(n_out * rows) * sizeof(float);
    if (chunk_logits_.bytes() < bytes) {
      chunk_logits_ = Buffer();
      Result<Buffer> buffer = backend_.allocate(bytes, MemoryKind::kDevice);
      SO_CHECK(buffer.ok(), "allocating output chunk logits: ", buffer.status().to_string());
      chunk_logits_ = std::move(buffer).value();
    }
    backend_.matmul(output.weight, buffer(kNormed), n_out, chunk_logits_.as<float>());
    backend_.copy_2d(logits + output.first_row, n_vocab * sizeof(float), chunk_logits_.data(), rows * sizeof(float),
                     rows * sizeof(float), size_t(n_out));
    layer_source_->release_output(chunk);
  }
}

void ModelRunner::micro_batch_rows(int64_t start, int64_t count) {
  // The attention rows of tokens [start, start + count): rows cut at the edges keep their
  // later (or earlier) positions; tokens are numbered from the micro-batch's start.
  micro_rows_.clear();
  for (const AttentionRow& row : attention_rows_) {
    const int64_t first = std::max<int64_t>(row.first_token, start);
    const int64_t end = std::min<int64_t>(int64_t(row.first_token) + row.n_tokens, start + count);
    if (first >= end) continue;
    AttentionRow cut = row;
    cut.kv_start = row.kv_start + static_cast<int32_t>(first - row.first_token);
    cut.n_tokens = static_cast<int32_t>(end - first);
    cut.first_token = static_cast<int32_t>(first - start);
    micro_rows_.push_back(cut);
  }
}

void ModelRunner::attention_block(int layer, const LayerWeights& w, int64_t start, int64_t count,
                                  const KvGeometry& geometry, bool store_only) {
  const ModelConfig& c = model_.config;
  if (c.is_mla()) {
    latent_attention_block(layer, w, start, count, geometry, store_only);
    return;
  }
  float* x = buffer(kResidual) + start * c.dim;
  float* h = buffer(kNormed);
  float* q = buffer(kQuery);
  float* k = buffer(kKey);
  float* v = buffer(kValue);
  micro_batch_rows(start, count);
  const std::span<const int32_t> positions(positions_.data() + start, size_t(count));
  backend_.rmsnorm(x, w.attn_norm, c.rms_eps, count, c.dim, h);
  const TensorView qkv[] = {w.wq, w.wk, w.wv};
  float* const qkv_out[] = {q, k, v};
  backend_.matmul_many(qkv, h, count, qkv_out);
  if (w.bq) {
    backend_.add_bias(q, w.bq, count, c.q_dim());
    backend_.add_bias(k, w.bk, count, c.kv_dim());
    backend_.add_bias(v, w.bv, count, c.kv_dim());
  }
  if (w.q_norm) {  // each head's vector is a row of its own
    backend_.rmsnorm(q, w.q_norm, c.rms_eps, count * c.n_heads, c.head_dim, q);
    backend_.rmsnorm(k, w.k_norm, c.rms_eps, count * c.n_kv_heads, c.head_dim, k);
  }
  const bool slides = c.layer_slides(layer);
  const RopeParams& rope = slides ? sliding_rope_ : rope_;
  AttentionParams params = slides ? sliding_attention_params_ : attention_params_;
  params.sinks = w.attn_sinks;
  backend_.rope(q, positions, c.n_heads, c.head_dim, rope);
  backend_.rope(k, positions, c.n_kv_heads, c.head_dim, rope);
  if (c.arch == Architecture::kGemma3) {
    // Gemma scales the queries, not the scores (llama.cpp too): the same up to where q's
    // f16 rounding lands in the subnormals, and there the reference's bits are these.
    backend_.scale(q, params.scale, count * c.q_dim());
    params.scale = 1.0f;
  }
  if (host_attention_ != nullptr) {
    // note: host threads read the sinks from the model's own (host) copy of the layer.
    host_attention_->run(geometry, layer, micro_rows_, params, model_.weights.layers[layer].attn_sinks, count, q, k, v,
                         buffer(kAttention), store_only);
    return;
  }
  backend_.kv_store(geometry, layer, micro_rows_, k, v);
  if (store_only) return;  // the cache is written; nothing reads the rest
  backend_.attention(geometry, layer, micro_rows_, params, q, buffer(kAttention));
}

void ModelRunner::latent_attention_block(int layer, const LayerWeights& w, int64_t start, int64_t count,
                                         const KvGeometry& geometry, bool store_only) {
  const ModelConfig& c = model_.config;
  const int64_t n_heads = c.n_heads, n_rot = c.rope.n_rot, rank = c.kv_lora_rank, nope = c.qk_nope_dim;
  const int64_t qk = c.qk_head_dim(), head = c.head_dim, v_dim = c.v_head_dim;
  constexpr size_t f = sizeof(float);
  float* x = buffer(kResidual) + start * c.dim;
  float* h = buffer(kNormed);
  float* q_heads = buffer(kAttention);  // (count, n_heads, nope + rope) until attention writes there
  float* q = buffer(kQuery);            // (count, n_heads, head): rope part, then the absorbed nope part
  float* k = buffer(kKey);              // (count, head): rope part, then the normed latent
  float* latent = buffer(kValue);       // (count, rank)
  float* in = buffer(kGate);            // per-head scratch
  float* out = buffer(kUp);
  micro_batch_rows(start, count);
  const std::span<const int32_t> positions(positions_.data() + start, size_t(count));
  backend_.rmsnorm(x, w.attn_norm, c.rms_eps, count, c.dim, h);
  if (w.wq_a.data) {
    backend_.matmul(w.wq_a, h, count, in);
    backend_.rmsnorm(in, w.q_a_norm, c.rms_eps, count, c.q_lora_rank, in);
    backend_.matmul(w.wq, in, count, q_heads);
  } else {
    backend_.matmul(w.wq, h, count, q_heads);
  }
  // Keys: the compressed latent (normed) and one rope part shared by every head.
  backend_.matmul(w.wkv_a, h, count, out);
  backend_.copy_2d(latent, rank * f, out, (rank + n_rot) * f, rank * f, size_t(count));
  backend_.rmsnorm(latent, w.kv_a_norm, c.rms_eps, count, rank, latent);
  backend_.copy_2d(k, head * f, out + rank, (rank + n_rot) * f, n_rot * f, size_t(count));
  backend_.copy_2d(k + n_rot, head * f, latent, rank * f, rank * f, size_t(count));
  // Queries: each head's nope part mapped into the latent space (absorbing k_b), its rope part kept.
  backend_.copy_2d(q, head * f, q_heads + nope, qk * f, n_rot * f, size_t(count * n_heads));
  for (int64_t i = 0; i < n_heads; ++i) {
    backend_.copy_2d(in, nope * f, q_heads + i * qk, n_heads * qk * f, nope * f, size_t(count));
    backend_.matmul(w.wk_b[size_t(i)], in, count, out);
    backend_.copy_2d(q + i * head + n_rot, n_heads * head * f, out, rank * f, rank * f, size_t(count));
  }
  backend_.rope(q, positions, n_heads, head, rope_);
  backend_.rope(k, positions, 1, head, rope_);
  float* attention = buffer(kAttention);
  if (host_attention_ != nullptr) {
    host_attention_->run(geometry, layer, micro_rows_, attention_params_, nullptr, count, q, k, k, attention,
                         store_only);
  } else {
    backend_.kv_store(geometry, layer, micro_rows_, k, k);
    if (!store_only) backend_.attention(geometry, layer, micro_rows_, attention_params_, q, attention);
  }
  if (store_only) return;
  // Each head's latent output (past its rope part) to its values (v_b), then (count, n_heads * v).
  for (int64_t i = 0; i < n_heads; ++i) {
    backend_.copy_2d(in, rank * f, attention + i * head + n_rot, n_heads * head * f, rank * f, size_t(count));
    backend_.matmul(w.wv_b[size_t(i)], in, count, out);
    backend_.copy_2d(q + i * v_dim, n_heads * v_dim * f, out, v_dim * f, v_dim * f, size_t(count));
  }
  backend_.copy_2d(attention, n_heads * v_dim * f, q, n_heads * v_dim * f, n_heads * v_dim * f, size_t(count));
}

void ModelRunner::output_block(int layer, const LayerWeights& w, float* x, const float* attn, int64_t count) {
  const ModelConfig& c = model_.config;
  float* h = buffer(kNormed);
  float* proj = buffer(kProjected);
  backend_.matmul(w.wo, attn, count, proj);
  if (w.bo) backend_.add_bias(proj, w.bo, count, c.dim);
  if (w.post_attn_norm) backend_.rmsnorm(proj, w.post_attn_norm, c.rms_eps, count, c.dim, proj);
  backend_.add(x, proj, x, count * c.dim);
  backend_.rmsnorm(x, w.ffn_norm, c.rms_eps, count, c.dim, h);
  if (c.layer_is_moe(layer)) {
    MoeWeights moe{w.router, w.expert_gate, w.expert_up, w.expert_down, c.n_experts_used, c.moe_normalize};
    moe.router_bias = w.router_bias;
    moe.gate_bias = w.expert_gate_bias;
    moe.up_bias = w.expert_up_bias;
    moe.down_bias = w.expert_down_bias;
    moe.clamped_swiglu = c.activation == FfnActivation::kSwigluOai;
    moe.sigmoid_scores = c.gating == MoeGating::kSigmoid;
    // note: routing runs on the host, which reads the model's own copy of the bias.
    moe.selection_bias = model_.weights.layers[layer].expert_selection_bias;
    moe.n_groups = c.n_expert_groups;
    moe.n_groups_used = c.n_expert_groups_used;
    moe.group_by_best = c.expert_group_by_best;
    moe.weights_scale = c.expert_weights_scale;
    backend_.moe_ffn(moe, h, count, c.dim, c.ffn_dim, proj);
    if (w.shared_gate.data) {  // shared experts: every token's dense FFN beside the routed ones
      dense_ffn(w.shared_gate, w.shared_up, w.shared_down, h, count, c.shared_ffn_dim(), buffer(kShared));
      backend_.add(proj, buffer(kShared), proj, count * c.dim);
    }
  } else {
    dense_ffn(w.w_gate, w.w_up, w.w_down, h, count, c.layer_ffn_dim(layer), proj);
  }
  if (w.post_ffn_norm) backend_.rmsnorm(proj, w.post_ffn_norm, c.rms_eps, count, c.dim, proj);
  backend_.add(x, proj, x, count * c.dim);
}

void ModelRunner::dense_ffn(const TensorView& w_gate, const TensorView& w_up, const TensorView& w_down, const float* h,
                            int64_t count, int64_t ffn_dim, float* out) {
  float* gate = buffer(kGate);
  float* up = buffer(kUp);
  const TensorView gate_up[] = {w_gate, w_up};
  float* const gate_up_out[] = {gate, up};
  backend_.matmul_many(gate_up, h, count, gate_up_out);
  if (model_.config.activation == FfnActivation::kGeluTanh) {
    backend_.geglu(gate, up, gate, count * ffn_dim);
  } else {
    backend_.swiglu(gate, up, gate, count * ffn_dim);
  }
  backend_.matmul(w_down, gate, count, out);
}

void ModelRunner::forward_layer(int layer, const LayerWeights& w, int64_t n_tokens, const KvGeometry& geometry,
                                bool last_layer, std::span<const int32_t> keep_rows) {
  const ModelConfig& c = model_.config;
  const int64_t n_micro = micro_batch_tokens_ > 0 ? std::min<int64_t>(n_tokens, micro_batch_tokens_) : n_tokens;
  const bool subset = last_layer && static_cast<int64_t>(keep_rows.size()) < n_tokens;
  // note: micro-batches go in token order, so a row cut at a boundary finds the K/V of its
  // earlier tokens in the cache when its later ones attend. Kernels are batch-invariant:
  // the cut changes no bit of any row.
  size_t kept = 0;
  for (int64_t start = 0; start < n_tokens; start += n_micro) {
    const int64_t count = std::min(n_micro, n_tokens - start);
    attention_block(layer, w, start, count, geometry, /*store_only=*/subset && keep_rows.empty());
    if (!subset) {
      output_block(layer, w, buffer(kResidual) + start * c.dim, buffer(kAttention), count);
      continue;
    }
    // The last layer carries on only with the rows whose logits are wanted.
    const size_t first = kept;
    while (kept < keep_rows.size() && keep_rows[kept] < start + count) ++kept;
    if (kept == first) continue;
    gather_indices_.clear();
    for (size_t i = first; i < kept; ++i) gather_indices_.push_back(static_cast<int32_t>(keep_rows[i] - start));
    backend_.gather_rows(buffer(kAttention), gather_indices_, c.attention_out_dim(),
                         buffer(kGatheredAttention) + first * c.attention_out_dim());
    backend_.gather_rows(buffer(kResidual) + start * c.dim, gather_indices_, c.dim, buffer(kGathered) + first * c.dim);
  }
  if (!subset || keep_rows.empty()) return;
  std::swap(workspace_[kResidual], workspace_[kGathered]);
  std::swap(workspace_rows_[kResidual], workspace_rows_[kGathered]);
  const int64_t n_keep = static_cast<int64_t>(keep_rows.size());
  for (int64_t start = 0; start < n_keep; start += n_micro) {
    const int64_t count = std::min(n_micro, n_keep - start);
    output_block(layer, w, buffer(kResidual) + start * c.dim,
                 buffer(kGatheredAttention) + start * c.attention_out_dim(), count);
  }
}

}  // namespace so
