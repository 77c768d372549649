// Builds a forward step over rows of a KV cache: reserves each row's pages, records
// where its tokens go, and after the step advances the rows' lengths.
#pragma once

#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "backend/step.h"

namespace so {

class StepBuilder {
 public:
  explicit StepBuilder(KvCache& kv) : kv_(kv) {}

  // Fails (and adds nothing) when the KV budget can't hold the row's new positions.
  Status add_row(int32_t kv_row, std::span<const int32_t> tokens, LogitsWanted logits = LogitsWanted::kLast);

  const StepInput& input() const { return input_; }
  std::span<const int32_t> kv_rows() const { return kv_rows_; }
  bool empty() const { return input_.rows.empty(); }
  // Positions every row's attention reads in this step (history + new tokens).
  int64_t kv_positions_read() const;

  // After a successful forward: the new positions become part of each row's cache.
  void commit();

 private:
  KvCache& kv_;
  StepInput input_;
  std::vector<int32_t> kv_rows_;
};

}  // namespace so
