// Prompt lookup: propose what followed the most recent earlier occurrence of the row's
// last n tokens (n from max_ngram down to min_ngram) in its own prompt and output. Costs
// no model pass; pays off where outputs copy their input (summaries, code edits).
#pragma once

#include <unordered_map>

#include "spec/drafter.h"

namespace so {

struct NgramOptions {
  int max_ngram = 3;
  int min_ngram = 1;
};

class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(const NgramOptions& options = {});
  std::string_view name() const override { return "ngram"; }
  Status add_row(int64_t row, std::span<const int32_t> prompt) override;
  void remove_row(int64_t row) override { histories_.erase(row); }
  Status propose(std::span<const DraftQuery> queries, std::vector<Proposal>& proposals) override;
  void commit(int64_t row, std::span<const int32_t> committed) override;

 private:
  NgramOptions options_;
  std::unordered_map<int64_t, std::vector<int32_t>> histories_;  // committed tokens per row
};

// The lookup itself: up to k tokens that followed the latest earlier match of the
// context's suffix, longest n first. Empty when nothing matches.
std::vector<int32_t> ngram_lookup(std::span<const int32_t> context, int k, const NgramOptions& options);

}  // namespace so
