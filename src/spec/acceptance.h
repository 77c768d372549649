// Verification: which drafted tokens a row keeps (ARCHITECTURE.md section 6).
//  - greedy: the longest prefix equal to the target's argmax, then the target's argmax at
//    the first mismatch (or after the last draft: the bonus token);
//  - sampling: the standard rejection rule (Leviathan et al. 2023, Chen et al. 2023):
//    accept draft x with probability min(1, p(x) / q(x)); on rejection draw from
//    max(0, p - q) normalized; after k accepts draw the bonus from p. The committed tokens
//    then follow the target's distribution exactly.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampler/sampler.h"

namespace so {

struct Verdict {
  int n_accepted = 0;       // drafts kept, a prefix of the proposal
  int32_t next_token = -1;  // the target's token after them (correction or bonus)
};

// Random counters for a row's draws at a position, kept apart per purpose so no two draws
// share a uniform. Plain sampling, bonus and residual draws use the position itself, so k = 0
// samples exactly as plain decoding does.
enum class DrawPurpose : uint64_t { kToken = 0, kDraft = 1, kAcceptTest = 2 };
uint64_t draw_counter(DrawPurpose purpose, int64_t position);

// logits: (k + 1, n_vocab), the target's logits after the pending token and each draft.
Verdict verify_greedy(std::span<const int32_t> draft, std::span<const float> logits, int64_t n_vocab);

// q: the drafter's distribution per draft token, or empty for point masses.
// first_position: the position of draft[0] (also where a zero-length draft's token goes).
Verdict verify_sampled(std::span<const int32_t> draft, std::span<const std::vector<TokenProbability>> q,
                       std::span<const float> logits, int64_t n_vocab, const SamplingParams& params, uint64_t stream,
                       int64_t first_position);

// --simulate-acceptance: the accepted length drawn from the acceptance law (each draft kept
// with probability alpha while the ones before it were), the next token the target's argmax
// after it. Throughput studies with dummy weights only: outputs are not the model's.
Verdict verify_simulated(std::span<const float> logits, int n_drafts, int64_t n_vocab, double alpha, uint64_t seed,
                         uint64_t stream, int64_t first_position);

// One position of the rejection rule, on distributions as sampling_distribution returns
// them. q empty: a point mass on x.
struct AcceptOutcome {
  bool accepted = false;
  int32_t token = -1;  // x when accepted, else the residual draw
};
AcceptOutcome accept_or_resample(std::span<const TokenProbability> p, std::span<const TokenProbability> q, int32_t x,
                                 double uniform_accept, double uniform_resample);

// Probability of token in a sparse distribution (0 when absent).
float probability_of(std::span<const TokenProbability> distribution, int32_t token);

}  // namespace so
