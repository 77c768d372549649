// A model as the planner sees it: what each pass reads and computes, without weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

// A model's forward step measured on the machine (`specoffload profile -m MODEL`):
//   fixed + token * tokens + logit * logit_rows seconds,
// with weights in device memory and short contexts (attention is added on top). It
// replaces the matrix-by-matrix estimate where that misses per-op and small-matrix costs.
struct StepCost {
  double fixed_seconds = 0;
  double token_seconds = 0;
  double logit_seconds = 0;
};

struct ModelShape {
  std::string name;
  int n_layers = 0;
  std::vector<MatrixShape> layer;  // one layer's matrices (the layers are alike)
  int64_t layer_bytes = 0;         // one packed layer: what streaming it moves
  MatrixShape head;                // the LM head
  int64_t kv_bytes_per_token = 0;  // every layer's K and V for one position
  int n_heads = 0;
  int head_dim = 0;
  int dim = 0;
  int ffn_dim = 0;
  int n_vocab = 0;
  int n_ctx = 0;
  std::optional<StepCost> measured;  // from the profile, when it measured this model

  // Weights a full pass reads from device memory: the layers and the head.
  int64_t device_bytes() const { return int64_t(n_layers) * layer_bytes + head.bytes; }
  // The same model cut to its first n layers (a self-draft).
  ModelShape first_layers(int n) const;
};

}  // namespace so
