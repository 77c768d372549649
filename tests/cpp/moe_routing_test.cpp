// MoE routing (backend/moe_routing.h): DeepSeek-V3's choice (sigmoid scores, a selection bias, groups) against
// choices worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/moe_routing.h"

namespace so {
namespace {

MoeWeights routing(int n_used, bool normalize) {
  MoeWeights moe{};
  moe.n_experts_used = n_used;
  moe.normalize_weights = normalize;
  return moe;
}

TEST(MoeRouting, TopKPicksTheLargestScoresWithTiesToTheLowerId) {
  const std::vector<float> scores = {0.1f, 0.4f, 0.4f, 0.1f};
  std::vector<int32_t> selected(2);
  std::vector<float> weights(2);
  route_top_k(scores.data(), 1, 4, routing(2, true), selected.data(), weights.data());
  EXPECT_EQ(selected, (std::vector<int32_t>{1, 2}));
  EXPECT_FLOAT_EQ(weights[0], 0.5f);
  EXPECT_FLOAT_EQ(weights[1], 0.5f);
}

TEST(MoeRouting, SelectionBiasSteersTheChoiceButNotTheWeights) {
  const std::vector<float> scores = {0.9f, 0.8f, 0.3f, 0.2f};
  const std::vector<float> bias = {0.0f, 0.0f, 1.0f, 0.0f};
  MoeWeights moe = routing(2, false);
  moe.selection_bias = bias.data();
  moe.weights_scale = 2.5f;
  std::vector<int32_t> selected(2);
  std::vector<float> weights(2);
  route_top_k(scores.data(), 1, 4, moe, selected.data(), weights.data());
  EXPECT_EQ(selected, (std::vector<int32_t>{2, 0}));  // 0.3 + 1 beats 0.9; the weights are the unbiased scores
  EXPECT_FLOAT_EQ(weights[0], 0.3f * 2.5f);
  EXPECT_FLOAT_EQ(weights[1], 0.9f * 2.5f);
}

TEST(MoeRouting, GroupsAreRankedByTheirTwoBestAndTheRestExcluded) {
  // Four groups of two. Group 0 holds the single best expert but the weakest pair; groups 1 and 2 win.
  const std::vector<float> scores = {0.95f, 0.0f, 0.6f, 0.6f, 0.5f, 0.55f, 0.3f, 0.3f};
  MoeWeights moe = routing(2, true);
  moe.n_groups = 4;
  moe.n_groups_used = 2;
  std::vector<int32_t> selected(2);
  std::vector<float> weights(2);
  route_top_k(scores.data(), 1, 8, moe, selected.data(), weights.data());
  EXPECT_EQ(selected, (std::vector<int32_t>{2, 3}));
  EXPECT_FLOAT_EQ(weights[0] + weights[1], 1.0f);
  moe.n_groups = 0;  // ungrouped, expert 0 wins
  route_top_k(scores.data(), 1, 8, moe, selected.data(), weights.data());
  EXPECT_EQ(selected[0], 0);
}

TEST(MoeRouting, GroupsRankedByTheirBestWhenAskedTo) {
  // DeepSeek-V2's group_limited_greedy: group 0's single best (0.95) now carries it.
  const std::vector<float> scores = {0.95f, 0.0f, 0.6f, 0.6f, 0.5f, 0.55f, 0.3f, 0.3f};
  MoeWeights moe = routing(2, false);
  moe.n_groups = 4;
  moe.n_groups_used = 2;
  moe.group_by_best = true;
  std::vector<int32_t> selected(2);
  std::vector<float> weights(2);
  route_top_k(scores.data(), 1, 8, moe, selected.data(), weights.data());
  EXPECT_EQ(selected, (std::vector<int32_t>{0, 2}));  // groups 0 and 1 win; 3 ties 2 and loses on id
  EXPECT_FLOAT_EQ(weights[0], 0.95f);
}

TEST(MoeRouting, SigmoidIsTheLogisticFunction) {
  std::vector<float> x = {-2.0f, 0.0f, 3.0f};
  sigmoid_in_place(x.data(), 3);
  EXPECT_FLOAT_EQ(x[0], 1.0f / (1.0f + std::exp(2.0f)));
  EXPECT_FLOAT_EQ(x[1], 0.5f);
  EXPECT_FLOAT_EQ(x[2], 1.0f / (1.0f + std::exp(-3.0f)));
}

TEST(MoeRouting, GroupsByExpertKeepEachGroupInSlotOrder) {
  // 4 tokens, 2 choices each, over 5 experts (expert 3 unused).
  const std::vector<int32_t> selected = {2, 0, 0, 4, 2, 1, 4, 2};
  ExpertGroups groups;
  group_by_expert(selected.data(), 4, 2, 5, groups);
  EXPECT_EQ(groups.offsets, (std::vector<int64_t>{0, 2, 3, 6, 6, 8}));
  EXPECT_EQ(groups.slots, (std::vector<int32_t>{1, 2, 5, 0, 4, 7, 3, 6}));
  EXPECT_EQ(groups.tokens, (std::vector<int32_t>{0, 1, 2, 0, 2, 3, 1, 3}));
  EXPECT_EQ(groups.size(3), 0);
  // Reused for a smaller step: nothing of the last one is left.
  const std::vector<int32_t> next = {4, 3};
  group_by_expert(next.data(), 1, 2, 5, groups);
  EXPECT_EQ(groups.offsets, (std::vector<int64_t>{0, 0, 0, 0, 1, 2}));
  EXPECT_EQ(groups.slots, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(groups.tokens, (std::vector<int32_t>{0, 0}));
}

}  // namespace
}  // namespace so
