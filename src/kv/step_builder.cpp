#include "kv/step_builder.h"

namespace so {

Status StepBuilder::add_row(int32_t kv_row, std::span<const int32_t> tokens, LogitsWanted logits) {
  SO_TRY(kv_.reserve(kv_row, static_cast<int32_t>(tokens.size())));
  const int32_t first_token = static_cast<int32_t>(input_.tokens.size());
  input_.tokens.insert(input_.tokens.end(), tokens.begin(), tokens.end());
  input_.rows.push_back({kv_.attention_row(kv_row, first_token, static_cast<int32_t>(tokens.size())), logits});
  kv_rows_.push_back(kv_row);
  return Status::Ok();
}

int64_t StepBuilder::kv_positions_read() const {
  int64_t positions = 0;
  for (const StepRow& row : input_.rows) positions += int64_t(row.kv.kv_start) + row.kv.n_tokens;
  return positions;
}

void StepBuilder::commit() {
  for (size_t i = 0; i < input_.rows.size(); ++i) kv_.advance(kv_rows_[i], input_.rows[i].kv.n_tokens);
}

}  // namespace so
