// Acceptance rules (spec/acceptance.h): greedy keeps the argmax prefix; the rejection rule
// leaves the committed tokens distributed exactly as the target's, shown by chi-square
// tests that also reject a deliberately broken rule.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "sampling_test_util.h"
#include "spec/acceptance.h"

namespace so {
namespace {

using testing::logits_of;

std::vector<double> random_distribution(std::mt19937_64& rng, int n) {
  std::gamma_distribution<double> gamma(0.7, 1.0);
  std::vector<double> p(n);
  double total = 0;
  for (double& x : p) total += (x = gamma(rng) + 1e-3);
  for (double& x : p) x /= total;
  return p;
}

std::vector<TokenProbability> sparse(const std::vector<double>& p) {
  std::vector<TokenProbability> out;
  for (size_t t = 0; t < p.size(); ++t) out.push_back({static_cast<int32_t>(t), static_cast<float>(p[t])});
  return out;
}

// Chi-square statistic of observed counts against expected probabilities, and the
// critical value at significance 1e-5 (Wilson-Hilferty), for cells with expected > 0.
struct ChiSquare {
  double statistic = 0;
  double critical = 0;
  bool passes() const { return statistic < critical; }
};
ChiSquare chi_square(const std::vector<int64_t>& observed, const std::vector<double>& expected_probability) {
  int64_t total = 0;
  for (int64_t count : observed) total += count;
  ChiSquare result;
  int cells = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    const double expected = expected_probability[i] * double(total);
    if (expected <= 0) continue;
    result.statistic += (observed[i] - expected) * (observed[i] - expected) / expected;
    ++cells;
  }
  const double dof = cells - 1, z = 4.265;  // one-sided 1e-5
  result.critical = dof * std::pow(1 - 2 / (9 * dof) + z * std::sqrt(2 / (9 * dof)), 3);
  return result;
}

using AcceptRule = std::function<AcceptOutcome(std::span<const TokenProbability>, std::span<const TokenProbability>,
                                               int32_t, double, double)>;

// The broken rule: on rejection, draw from p instead of the residual max(0, p - q).
AcceptOutcome resample_from_target(std::span<const TokenProbability> p, std::span<const TokenProbability> q, int32_t x,
                                   double uniform_accept, double uniform_resample) {
  const double q_x = q.empty() ? 1.0 : probability_of(q, x);
  if (uniform_accept < probability_of(p, x) / q_x) return {true, x};
  return {false, sample_from(p, uniform_resample)};
}

// One position: draft x ~ q, then the rule. Returns the counts of the committed token.
std::vector<int64_t> one_position_counts(const AcceptRule& rule, const std::vector<double>& p,
                                         const std::vector<double>& q, int64_t trials, uint64_t seed) {
  const auto p_sparse = sparse(p), q_sparse = sparse(q);
  std::vector<int64_t> counts(p.size(), 0);
  for (int64_t trial = 0; trial < trials; ++trial) {
    const int32_t x = sample_from(q_sparse, sampling_uniform(seed, 1, trial));
    const AcceptOutcome outcome = rule(p_sparse, q_sparse, x, sampling_uniform(seed, 2, trial), sampling_uniform(seed, 3, trial));
    ++counts[outcome.token];
  }
  return counts;
}

TEST(SpecAcceptance, GreedyKeepsTheArgmaxPrefixThenTheTargetToken) {
  const int64_t vocab = 4;
  // Target argmax per position: 2, 1, 3, 0.
  std::vector<float> logits = {0, 0, 5, 0, /**/ 0, 5, 0, 0, /**/ 0, 0, 0, 5, /**/ 5, 0, 0, 0};
  Verdict all = verify_greedy(std::vector<int32_t>{2, 1, 3}, logits, vocab);
  EXPECT_EQ(all.n_accepted, 3);
  EXPECT_EQ(all.next_token, 0);  // the bonus
  Verdict some = verify_greedy(std::vector<int32_t>{2, 0, 3}, logits, vocab);
  EXPECT_EQ(some.n_accepted, 1);
  EXPECT_EQ(some.next_token, 1);  // the target's token at the first mismatch
  Verdict none = verify_greedy(std::vector<int32_t>{1}, std::span<const float>(logits).first(8), vocab);
  EXPECT_EQ(none.n_accepted, 0);
  EXPECT_EQ(none.next_token, 2);
}

TEST(SpecAcceptance, ZeroDraftsSampleExactlyAsPlainDecoding) {
  std::mt19937_64 rng(7);
  const auto logits = logits_of(random_distribution(rng, 50));
  SamplingParams params;
  params.temperature = 0.9f;
  params.top_k = 20;
  params.seed = 1234;
  std::vector<TokenProbability> scratch;
  for (int64_t position = 0; position < 200; ++position) {
    const Verdict verdict = verify_sampled({}, {}, logits, 50, params, 5, position);
    EXPECT_EQ(verdict.n_accepted, 0);
    EXPECT_EQ(verdict.next_token, sample_token(logits, params, 5, position, scratch));
  }
}

TEST(SpecAcceptance, RejectionRuleFollowsTheTargetAndABrokenRuleIsCaught) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 3; ++round) {
    const auto p = random_distribution(rng, 8), q = random_distribution(rng, 8);
    const auto exact = chi_square(one_position_counts(accept_or_resample, p, q, 200000, round), p);
    EXPECT_TRUE(exact.passes()) << "statistic " << exact.statistic << " critical " << exact.critical;
    const auto broken = chi_square(one_position_counts(resample_from_target, p, q, 200000, round), p);
    EXPECT_FALSE(broken.passes()) << "the broken rule went unnoticed: " << broken.statistic;
  }
}

TEST(SpecAcceptance, PointMassDraftsFollowTheTarget) {
  // An n-gram draft is deterministic: q is a point mass on the proposed token.
  std::mt19937_64 rng(3);
  const auto p = random_distribution(rng, 6);
  const auto p_sparse = sparse(p);
  for (int32_t x = 0; x < 6; ++x) {
    std::vector<int64_t> counts(6, 0);
    for (int64_t trial = 0; trial < 100000; ++trial) {
      ++counts[accept_or_resample(p_sparse, {}, x, sampling_uniform(9, x, trial), sampling_uniform(10, x, trial)).token];
    }
    const auto test = chi_square(counts, p);
    EXPECT_TRUE(test.passes()) << "x " << x << " statistic " << test.statistic;
  }
}

// Whole passes through verify_sampled: a context-free synthetic target (position i has
// distribution p[i]) and draft (q[i]); rows draft k = 3 per pass until they hold L tokens.
// The joint distribution of the first two tokens and every position's marginal must be
// the target's.
TEST(SpecAcceptance, VerifiedSequencesFollowTheTargetJointDistribution) {
  constexpr int kVocab = 5, kLength = 4, kDraft = 3;
  std::mt19937_64 rng(5);
  std::vector<std::vector<double>> p, q;
  for (int i = 0; i < kLength + kDraft; ++i) {
    p.push_back(random_distribution(rng, kVocab));
    q.push_back(random_distribution(rng, kVocab));
  }
  SamplingParams params;
  params.temperature = 1.0f;
  std::vector<int64_t> joint(kVocab * kVocab, 0);
  std::vector<std::vector<int64_t>> marginal(kLength, std::vector<int64_t>(kVocab, 0));
  const int64_t trials = 120000;
  for (int64_t trial = 0; trial < trials; ++trial) {
    params.seed = static_cast<uint64_t>(trial);
    std::vector<int32_t> sequence;
    while (static_cast<int>(sequence.size()) < kLength) {
      const int position = static_cast<int>(sequence.size());
      std::vector<int32_t> draft;
      std::vector<std::vector<TokenProbability>> draft_q;
      std::vector<float> logits;
      for (int j = 0; j < kDraft; ++j) {
        draft_q.push_back(sparse(q[position + j]));
        draft.push_back(sample_from(draft_q.back(), sampling_uniform(params.seed, 99, draw_counter(DrawPurpose::kDraft, position + j))));
        const auto row = logits_of(p[position + j]);
        logits.insert(logits.end(), row.begin(), row.end());
      }
      const auto bonus = logits_of(p[position + kDraft]);
      logits.insert(logits.end(), bonus.begin(), bonus.end());
      const Verdict verdict = verify_sampled(draft, draft_q, logits, kVocab, params, 99, position);
      sequence.insert(sequence.end(), draft.begin(), draft.begin() + verdict.n_accepted);
      sequence.push_back(verdict.next_token);
    }
    ++joint[sequence[0] * kVocab + sequence[1]];
    for (int i = 0; i < kLength; ++i) ++marginal[i][sequence[i]];
  }
  std::vector<double> joint_expected;
  for (int a = 0; a < kVocab; ++a) {
    for (int b = 0; b < kVocab; ++b) joint_expected.push_back(p[0][a] * p[1][b]);
  }
  const auto joint_test = chi_square(joint, joint_expected);
  EXPECT_TRUE(joint_test.passes()) << "joint statistic " << joint_test.statistic << " critical " << joint_test.critical;
  for (int i = 0; i < kLength; ++i) {
    const auto test = chi_square(marginal[i], p[i]);
    EXPECT_TRUE(test.passes()) << "position " << i << " statistic " << test.statistic;
  }
}

}  // namespace
}  // namespace so

namespace so {
namespace {

// --simulate-acceptance: accepted lengths follow the truncated geometric law, and the next
// token is the target's argmax after the accepted drafts.
TEST(SimulatedAcceptance, FollowsTheAcceptanceLaw) {
  const int64_t n_vocab = 8;
  const int k = 4;
  std::vector<float> logits(size_t(k + 1) * n_vocab, 0.0f);
  for (int row = 0; row <= k; ++row) logits[size_t(row) * n_vocab + row + 1] = 5.0f;  // argmax of row r is r + 1
  for (double alpha : {0.0, 0.6, 0.8, 1.0}) {
    std::vector<int> counts(k + 1, 0);
    const int trials = 40000;
    for (int t = 0; t < trials; ++t) {
      const Verdict v = verify_simulated(logits, k, n_vocab, alpha, 7, uint64_t(t), 100);
      ++counts[v.n_accepted];
      ASSERT_EQ(v.next_token, v.n_accepted + 1);
    }
    for (int n = 0; n <= k; ++n) {
      // P(n) = alpha^n (1 - alpha) for n < k, alpha^k for n = k.
      const double expected = n < k ? std::pow(alpha, n) * (1 - alpha) : std::pow(alpha, k);
      EXPECT_NEAR(double(counts[n]) / trials, expected, 0.01) << "alpha " << alpha << " accepted " << n;
    }
  }
}

}  // namespace
}  // namespace so
