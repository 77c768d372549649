// One forward step of a model over a ragged batch of rows (ARCHITECTURE.md section 3):
// each row feeds some tokens (a prefill chunk, one decode token, or k+1 tokens to verify)
// at the positions after what its KV cache already holds.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace so {

enum class LogitsWanted {
  kNone,  // a prefill chunk that doesn't end the prompt
  kLast,  // after the row's last token (decode, end of prefill)
  kAll,   // after every token (verification, tests)
};

// A row of the step: where its tokens sit in the step and in its KV pages.
struct StepRow {
  AttentionRow kv;  // first_token, n_tokens, kv_start (positions already cached), pages
  LogitsWanted logits = LogitsWanted::kLast;
};

struct StepInput {
  std::vector<int32_t> tokens;  // (n_tokens) the rows' tokens, row after row
  std::vector<StepRow> rows;

  // Logit rows this step produces: per row 0, 1 or n_tokens.
  int64_t n_logit_rows() const;
};

// KV geometry that fits a model (page size in positions).
KvGeometry kv_geometry_for(const ModelConfig& config, int page_tokens = 256);

class ModelRunner {
 public:
  ModelRunner(const Model& model, Backend& backend);

  const Model& model() const { return model_; }
  Backend& backend() const { return backend_; }

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
  void ensure_workspace(int64_t n_tokens);
  float* buffer(int index) const { return workspace_[index].as<float>(); }

  const Model& model_;
  Backend& backend_;
  RopeParams rope_;
  AttentionParams attention_params_;
  int64_t workspace_tokens_ = 0;
  std::vector<Buffer> workspace_;
  // Per-step plain data.
  std::vector<AttentionRow> attention_rows_;
  std::vector<int32_t> positions_;
  std::vector<int32_t> logit_tokens_;
  int64_t steps_ = 0;
};

}  // namespace so
