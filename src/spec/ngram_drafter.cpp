#include "spec/ngram_drafter.h"

#include <algorithm>

namespace so {

NgramDrafter::NgramDrafter(const NgramOptions& options) : options_(options) {
  SO_CHECK(options.min_ngram >= 1 && options.min_ngram <= options.max_ngram, "n-gram sizes ", options.min_ngram,
           "..", options.max_ngram);
}

std::vector<int32_t> ngram_lookup(std::span<const int32_t> context, int k, const NgramOptions& options) {
  const int64_t length = static_cast<int64_t>(context.size());
  for (int n = std::min<int64_t>(options.max_ngram, length - 1); n >= options.min_ngram; --n) {
    const auto suffix = context.subspan(length - n);
    // Latest match first: recent text predicts the continuation best.
    for (int64_t start = length - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), context.begin() + start)) continue;
      const int64_t from = start + n;
      const int64_t count = std::min<int64_t>(k, length - from);
      return {context.begin() + from, context.begin() + from + count};
    }
  }
  return {};
}

Status NgramDrafter::add_row(int64_t row, std::span<const int32_t> prompt) {
  histories_[row].assign(prompt.begin(), prompt.end());
  return Status::Ok();
}

Status NgramDrafter::propose(std::span<const DraftQuery> queries, std::vector<Proposal>& proposals) {
  proposals.assign(queries.size(), {});
  for (size_t i = 0; i < queries.size(); ++i) {
    const DraftQuery& query = queries[i];
    if (query.k <= 0) continue;
    auto found = histories_.find(query.row);
    SO_CHECK(found != histories_.end(), "propose for unknown row ", query.row);
    std::vector<int32_t>& history = found->second;
    history.push_back(query.pending_token);  // the context ends with the pending token
    proposals[i].tokens = ngram_lookup(history, query.k, options_);
    history.pop_back();
  }
  return Status::Ok();
}

void NgramDrafter::commit(int64_t row, std::span<const int32_t> committed) {
  auto found = histories_.find(row);
  SO_CHECK(found != histories_.end(), "commit for unknown row ", row);
  found->second.insert(found->second.end(), committed.begin(), committed.end());
}

}  // namespace so
