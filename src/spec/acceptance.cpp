#include "spec/acceptance.h"

#include <algorithm>

#include "base/check.h"

namespace so {

uint64_t draw_counter(DrawPurpose purpose, int64_t position) {
  return (static_cast<uint64_t>(purpose) << 48) | static_cast<uint64_t>(position);
}

float probability_of(std::span<const TokenProbability> distribution, int32_t token) {
  for (const TokenProbability& entry : distribution) {
    if (entry.token == token) return entry.probability;
  }
  return 0.0f;
}

Verdict verify_greedy(std::span<const int32_t> draft, std::span<const float> logits, int64_t n_vocab) {
  SO_CHECK_EQ(int64_t(logits.size()), int64_t(draft.size() + 1) * n_vocab);
  std::vector<TokenProbability> unused;
  const SamplingParams greedy;
  Verdict verdict;
  for (size_t i = 0; i <= draft.size(); ++i) {
    const int32_t target = sample_token(logits.subspan(i * n_vocab, n_vocab), greedy, 0, 0, unused);
    if (i == draft.size() || draft[i] != target) {
      verdict.next_token = target;
      break;
    }
    ++verdict.n_accepted;
  }
  return verdict;
}

AcceptOutcome accept_or_resample(std::span<const TokenProbability> p, std::span<const TokenProbability> q, int32_t x,
                                 double uniform_accept, double uniform_resample) {
  const double p_x = probability_of(p, x);
  const double q_x = q.empty() ? 1.0 : probability_of(q, x);
  if (q_x > 0.0 && uniform_accept < p_x / q_x) return {true, x};

  // Residual max(0, p - q) over p's support (q's mass outside p's support never adds).
  // note: without top-k both lists can span the vocabulary; q sorted by token keeps the
  // lookups logarithmic.
  std::vector<TokenProbability> q_by_token(q.begin(), q.end());
  std::sort(q_by_token.begin(), q_by_token.end(),
            [](const TokenProbability& a, const TokenProbability& b) { return a.token < b.token; });
  auto q_of = [&](int32_t token) -> double {
    if (q.empty()) return token == x ? 1.0 : 0.0;
    auto found = std::lower_bound(q_by_token.begin(), q_by_token.end(), token,
                                  [](const TokenProbability& entry, int32_t t) { return entry.token < t; });
    return found != q_by_token.end() && found->token == token ? found->probability : 0.0;
  };
  std::vector<TokenProbability> residual;
  residual.reserve(p.size());
  double total = 0.0;
  for (const TokenProbability& entry : p) {
    const double q_t = q_of(entry.token);
    const double mass = std::max(0.0, double(entry.probability) - q_t);
    if (mass > 0.0) {
      residual.push_back({entry.token, static_cast<float>(mass)});
      total += mass;
    }
  }
  // note: p == q leaves no residual, but then the accept test passes with probability 1;
  // only rounding lands here, and p is the right fallback.
  if (residual.empty() || total <= 0.0) return {false, sample_from(p, uniform_resample)};
  for (TokenProbability& entry : residual) entry.probability = static_cast<float>(entry.probability / total);
  return {false, sample_from(residual, uniform_resample)};
}

Verdict verify_sampled(std::span<const int32_t> draft, std::span<const std::vector<TokenProbability>> q,
                       std::span<const float> logits, int64_t n_vocab, const SamplingParams& params, uint64_t stream,
                       int64_t first_position) {
  if (params.greedy()) return verify_greedy(draft, logits, n_vocab);
  SO_CHECK_EQ(int64_t(logits.size()), int64_t(draft.size() + 1) * n_vocab);
  SO_CHECK(q.empty() || q.size() == draft.size(), "one draft distribution per draft token");
  std::vector<TokenProbability> p;
  Verdict verdict;
  for (size_t i = 0; i < draft.size(); ++i) {
    const int64_t position = first_position + int64_t(i);
    sampling_distribution(logits.subspan(i * n_vocab, n_vocab), params, p);
    const std::span<const TokenProbability> q_i = q.empty() ? std::span<const TokenProbability>() : q[i];
    const AcceptOutcome outcome =
        accept_or_resample(p, q_i, draft[i], sampling_uniform(params.seed, stream, draw_counter(DrawPurpose::kAcceptTest, position)),
                           sampling_uniform(params.seed, stream, draw_counter(DrawPurpose::kToken, position)));
    if (!outcome.accepted) {
      verdict.next_token = outcome.token;
      return verdict;
    }
    ++verdict.n_accepted;
  }
  // All accepted: the bonus token from p at the next position.
  const int64_t position = first_position + int64_t(draft.size());
  sampling_distribution(logits.subspan(draft.size() * n_vocab, n_vocab), params, p);
  verdict.next_token = sample_from(p, sampling_uniform(params.seed, stream, draw_counter(DrawPurpose::kToken, position)));
  return verdict;
}

Verdict verify_simulated(std::span<const float> logits, int n_drafts, int64_t n_vocab, double alpha, uint64_t seed,
                         uint64_t stream, int64_t first_position) {
  Verdict verdict;
  while (verdict.n_accepted < n_drafts &&
         sampling_uniform(seed, stream, draw_counter(DrawPurpose::kAcceptTest, first_position + verdict.n_accepted)) <
             alpha) {
    ++verdict.n_accepted;
  }
  const float* row = logits.data() + int64_t(verdict.n_accepted) * n_vocab;
  verdict.next_token = static_cast<int32_t>(std::max_element(row, row + n_vocab) - row);
  return verdict;
}

}  // namespace so
