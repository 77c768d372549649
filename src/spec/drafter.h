// Drafters propose tokens; one target pass scores them (ARCHITECTURE.md section 3). The
// seam is plain data: queries in, proposals out, the committed tokens back.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "sampler/sampler.h"

namespace so {

// One row asking for draft tokens after its committed history and its pending token.
struct DraftQuery {
  int64_t row = 0;
  int32_t pending_token = 0;        // committed, not yet fed to the target
  int32_t pending_position = 0;     // where the pending token sits in the row's sequence
  int k = 0;                        // tokens wanted; 0: none
  const SamplingParams* sampling = nullptr;  // greedy: argmax proposals; else draws from q
  uint64_t stream = 0;              // keys the draft's random draws with the seed
};

struct Proposal {
  std::vector<int32_t> tokens;  // at most k
  // The drafter's distribution for each token, when it sampled; empty: the proposal is
  // deterministic (a point mass on each token), as for greedy or n-gram drafts.
  std::vector<std::vector<TokenProbability>> q;
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual std::string_view name() const = 0;

  // A row enters with its prompt; the drafter catches up on it lazily.
  virtual Status add_row(int64_t row, std::span<const int32_t> prompt) = 0;
  virtual void remove_row(int64_t row) = 0;
  // proposals[i] answers queries[i].
  virtual Status propose(std::span<const DraftQuery> queries, std::vector<Proposal>& proposals) = 0;
  // After verification: what the row committed, i.e. its pending token then the accepted
  // drafts. The drafter drops state past the committed prefix (its KV, for a model).
  virtual void commit(int64_t row, std::span<const int32_t> committed) = 0;
  // Positions the drafter can read and write in one row (a draft model's context).
  virtual int64_t max_positions() const { return INT64_MAX; }
  // Seconds spent catching up on prompts and committed tokens, since creation.
  virtual double catch_up_seconds() const { return 0.0; }
  // Tokens a draft model has run through its layers, since creation (0 for lookup drafters).
  virtual int64_t fed_tokens() const { return 0; }
};

}  // namespace so
