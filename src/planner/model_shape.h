// A model as the planner sees it: what each pass reads and computes, without weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "planner/placement.h"
#include "tensor/dtype.h"

namespace so {

struct MatrixShape {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t bytes = 0;
  // MoE experts: the share of tokens routed to this matrix (n_used / n_experts); 1 otherwise.
  double token_share = 1.0;
};

// A model's forward step measured on the machine (`specoffload profile -m MODEL`), with
// weights in device memory and short contexts (attention is added on top): seconds at
// measured token counts, for verification steps (every token through the head: rows of
// one token) and prefill chunks (one row, its last token through the head). Between the
// points the cost is interpolated, past them extrapolated along the last segment. It
// replaces the matrix-by-matrix estimate, which misses what small matrices, per-op
// synchronization and the change from memory- to compute-bound cost.
struct StepCost {
  std::vector<std::pair<int64_t, double>> verify;   // (tokens, seconds), tokens increasing
  std::vector<std::pair<int64_t, double>> prefill;  // (tokens, seconds), tokens increasing
  // The cost of a step of `tokens` tokens, `logit_rows` of them through the head.
  double seconds(int64_t tokens, int64_t logit_rows) const;
  StepCost scaled(double factor) const;
};

struct ModelShape {
  std::string name;
  int n_layers = 0;
  std::vector<MatrixShape> layer;  // one layer's matrices (the layers are alike)
  int64_t layer_bytes = 0;         // one packed layer: what streaming it moves
  // Per layer: the first layer whose packed weights are the same bytes (dummy weights alias
  // one random pool; their host slabs are shared); empty: every layer its own.
  std::vector<int> layer_twins;
  MatrixShape head;                // the LM head
  int64_t kv_bytes_per_token = 0;  // every layer's K and V for one position
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int dim = 0;
  int ffn_dim = 0;                 // the widest FFN scratch row
  int64_t extra_scratch_width = 0;  // per token beyond q, k, v, dim and FFN rows (model/forward.cpp)
  int n_vocab = 0;
  int n_ctx = 0;
  std::optional<StepCost> measured;  // from the profile, when it measured this model

  // Weights a full pass reads from device memory: the layers and the head.
  int64_t device_bytes() const { return int64_t(n_layers) * layer_bytes + head.bytes; }
  int64_t q_dim() const { return int64_t(n_heads) * head_dim; }
  int64_t kv_dim() const { return int64_t(n_kv_heads) * head_dim; }
  // What a pass reads, segment by segment, as the layer streamer cuts it (planner/placement.h).
  PassSegments pass_segments() const;
  // The same model cut to its first n layers (a self-draft).
  ModelShape first_layers(int n) const;
};

}  // namespace so
