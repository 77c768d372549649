// N-gram lookup and the draft-length rule (spec/ngram_drafter.h, spec/draft_length.h).
#include <gtest/gtest.h>

#include <vector>

#include "spec/draft_length.h"
#include "spec/ngram_drafter.h"

namespace so {
namespace {

TEST(NgramLookup, ProposesWhatFollowedTheLatestLongestMatch) {
  const NgramOptions options{3, 1};
  // "... 1 2 3 7 8 | ... 1 2 3 4 5 6 | ... 2 3" : suffix "2 3" last matched before "4 5 6".
  const std::vector<int32_t> context = {1, 2, 3, 7, 8, 9, 1, 2, 3, 4, 5, 6, 0, 2, 3};
  EXPECT_EQ(ngram_lookup(context, 3, options), (std::vector<int32_t>{4, 5, 6}));
  EXPECT_EQ(ngram_lookup(context, 2, options), (std::vector<int32_t>{4, 5}));
  // A longer match wins over a more recent shorter one.
  const std::vector<int32_t> longer = {5, 6, 7, 1, 9, 9, 7, 2, 5, 6, 7};
  EXPECT_EQ(ngram_lookup(longer, 2, options), (std::vector<int32_t>{1, 9}));
  // No earlier occurrence of the last token: nothing.
  EXPECT_TRUE(ngram_lookup(std::vector<int32_t>{1, 2, 3}, 4, options).empty());
  // The continuation stops at the end of the context.
  EXPECT_EQ(ngram_lookup(std::vector<int32_t>{4, 5, 4}, 4, options), (std::vector<int32_t>{5, 4}));
}

TEST(NgramDrafter, DraftsFromPromptAndCommittedOutput) {
  NgramDrafter drafter;
  ASSERT_TRUE(drafter.add_row(7, std::vector<int32_t>{10, 11, 12, 13}).ok());
  SamplingParams greedy;
  std::vector<Proposal> proposals;
  DraftQuery query{7, 11, 4, 2, &greedy, 0};
  ASSERT_TRUE(drafter.propose(std::span<const DraftQuery>(&query, 1), proposals).ok());
  EXPECT_EQ(proposals[0].tokens, (std::vector<int32_t>{12, 13}));
  EXPECT_TRUE(proposals[0].q.empty());  // deterministic
  drafter.commit(7, std::vector<int32_t>{11, 12, 13});
  query = {7, 10, 7, 3, &greedy, 0};
  ASSERT_TRUE(drafter.propose(std::span<const DraftQuery>(&query, 1), proposals).ok());
  EXPECT_EQ(proposals[0].tokens, (std::vector<int32_t>{11, 12, 13}));
  query.k = 0;
  ASSERT_TRUE(drafter.propose(std::span<const DraftQuery>(&query, 1), proposals).ok());
  EXPECT_TRUE(proposals[0].tokens.empty());
}

TEST(DraftLength, ExpectedTokensPerPass) {
  EXPECT_NEAR(expected_tokens_per_pass(0.7, 4), 2.7731, 1e-4);  // ARCHITECTURE.md section 2
  EXPECT_NEAR(expected_tokens_per_pass(0.0, 4), 1.0, 1e-12);
  EXPECT_NEAR(expected_tokens_per_pass(1.0, 4), 5.0, 1e-12);
}

int choose_one(DraftLengthPolicy& policy, const RowAcceptance& row, int cap = 64) {
  const RowAcceptance* rows[] = {&row};
  int caps[] = {cap}, k[] = {-1};
  policy.choose(rows, caps, k);
  return k[0];
}

TEST(DraftLength, FixedAlwaysDraftsTheCap) {
  DraftLengthPolicy fixed(5, /*adaptive=*/false);
  RowAcceptance poor;
  for (int i = 0; i < 20; ++i) fixed.observe_row(poor, 5, 0);
  EXPECT_EQ(choose_one(fixed, poor), 5);
  EXPECT_EQ(choose_one(fixed, poor, 2), 2);  // the row's own cap (token limit, context)
}

TEST(DraftLength, AdaptiveFollowsAcceptanceAndCosts) {
  DraftLengthPolicy policy(8, /*adaptive=*/true);
  // Verification costs 10 ms plus 1 ms per token; drafting 0.5 ms per step.
  for (int tokens : {1, 2, 4, 8, 16, 64, 3, 5}) policy.observe_step(tokens, 0.010 + 0.001 * tokens);
  policy.observe_draft_step(0.0005);
  EXPECT_NEAR(policy.verify_seconds(10), 0.020, 1e-6);

  RowAcceptance good, poor;
  for (int i = 0; i < 30; ++i) {
    policy.observe_row(good, 8, 8);  // every draft accepted
    policy.observe_row(poor, 4, 0);  // none
  }
  EXPECT_GT(policy.alpha(good), 0.85);
  EXPECT_LT(policy.alpha(poor), 0.3);
  EXPECT_EQ(choose_one(policy, good), 8);
  EXPECT_EQ(choose_one(policy, good, 3), 3);
  EXPECT_LE(choose_one(policy, poor), 1);
  // Where a verified token costs half a decode step, a poor row stops drafting.
  DraftLengthPolicy costly(8, /*adaptive=*/true);
  for (int tokens : {1, 2, 4, 8, 16}) costly.observe_step(tokens, 0.010 + 0.005 * tokens);
  RowAcceptance hopeless;
  for (int i = 0; i < 30; ++i) costly.observe_row(hopeless, 4, 0);
  int drafted_passes = 0;
  for (int pass = 0; pass < 64; ++pass) drafted_passes += choose_one(costly, hopeless) > 0;
  EXPECT_EQ(drafted_passes, 64 / DraftLengthPolicy::kExplorePeriod);  // exploration only
  // Expensive drafting shortens the draft at the same acceptance.
  RowAcceptance medium;
  for (int i = 0; i < 30; ++i) policy.observe_row(medium, 4, i % 2 == 0 ? 4 : 2);
  const int cheap_k = choose_one(policy, medium);
  for (int i = 0; i < 30; ++i) policy.observe_draft_step(0.008);
  EXPECT_LT(choose_one(policy, medium), cheap_k);
  // A row that stopped drafting drifts back toward the pool (here mostly good rows).
  const double before = policy.alpha(poor);
  for (int i = 0; i < 40; ++i) policy.observe_row(poor, 0, 0);
  EXPECT_GT(policy.alpha(poor), before + 0.1);
  EXPECT_LT(policy.alpha(poor), policy.pooled_alpha() + 1e-9);
}

TEST(DraftLength, BatchDraftsGoToTheRowsMostLikelyToKeepThem) {
  DraftLengthPolicy policy(6, /*adaptive=*/true);
  // Compute-bound verification: every token costs as much as the fixed part.
  for (int tokens : {4, 8, 16, 24, 32}) policy.observe_step(tokens, 0.001 * tokens + 0.004);
  RowAcceptance good, poor;
  for (int i = 0; i < 30; ++i) {
    policy.observe_row(good, 6, 6);
    policy.observe_row(poor, 6, 0);
  }
  const RowAcceptance* rows[] = {&good, &poor, &good, &poor};
  const int caps[] = {6, 6, 6, 6};
  int k[4];
  policy.choose(rows, caps, k);
  EXPECT_GT(k[0], 0);
  EXPECT_EQ(k[0], k[2]);
  EXPECT_EQ(k[1], 0);
  EXPECT_EQ(k[3], 0);
}

}  // namespace
}  // namespace so
