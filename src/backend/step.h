// One forward step over a ragged batch of rows, as plain data (ARCHITECTURE.md section 3):
// each row feeds some tokens (a prefill chunk, one decode token, or k+1 tokens to verify)
// at the positions after what its KV cache already holds.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/ops.h"

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
  int64_t n_logit_rows() const {
    int64_t n = 0;
    for (const StepRow& row : rows) {
      n += row.logits == LogitsWanted::kAll ? row.kv.n_tokens : row.logits == LogitsWanted::kLast ? 1 : 0;
    }
    return n;
  }
};

}  // namespace so
