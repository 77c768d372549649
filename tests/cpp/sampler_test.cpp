#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "sampler/sampler.h"
#include "sampling_test_util.h"

namespace so {
namespace {

using testing::logits_of;

TEST(Sampler, GreedyIsArgmaxWithFirstIndexOnTies) {
  std::vector<TokenProbability> scratch;
  SamplingParams greedy;
  EXPECT_EQ(sample_token(std::vector<float>{1, 3, 3, 2}, greedy, 0, 0, scratch), 1);
}

TEST(Sampler, TransformsMatchTheirDefinitions) {
  const auto logits = logits_of({0.4, 0.3, 0.15, 0.1, 0.05});
  std::vector<TokenProbability> dist;
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 3;
  sampling_distribution(logits, params, dist);
  ASSERT_EQ(dist.size(), 3u);
  EXPECT_NEAR(dist[0].probability, 0.4 / 0.85, 1e-6);
  EXPECT_EQ(dist[2].token, 2);

  params.top_k = 0;
  params.top_p = 0.7f;  // 0.4 + 0.3 reaches 0.7
  sampling_distribution(logits, params, dist);
  ASSERT_EQ(dist.size(), 2u);
  EXPECT_NEAR(dist[1].probability, 0.3 / 0.7, 1e-6);

  params.top_p = 1.0f;
  params.min_p = 0.3f;  // keep p >= 0.12
  sampling_distribution(logits, params, dist);
  ASSERT_EQ(dist.size(), 3u);

  params.min_p = 0.0f;
  params.temperature = 2.0f;  // p^(1/2), renormalized
  sampling_distribution(logits, params, dist);
  const double z = std::sqrt(0.4) + std::sqrt(0.3) + std::sqrt(0.15) + std::sqrt(0.1) + std::sqrt(0.05);
  EXPECT_NEAR(dist[0].probability, std::sqrt(0.4) / z, 1e-6);
}

TEST(Sampler, TinyTemperaturesAreGreedyInTheLimit) {
  // Issue 17: 1e-40 and 1e-45 (denormals) used to turn the scaled logits into inf - inf.
  const std::vector<float> logits = {1.0f, 7.5f, 7.499f, -3.0f};
  std::vector<TokenProbability> dist;
  for (float temperature : {1e-6f, 1e-20f, 1e-40f, 1e-45f}) {
    SamplingParams params;
    params.temperature = temperature;
    params.top_k = 0;
    params.top_p = 1.0f;
    params.min_p = 0.0f;
    sampling_distribution(logits, params, dist);
    ASSERT_FALSE(dist.empty()) << temperature;
    EXPECT_EQ(dist[0].token, 1) << temperature;
    EXPECT_EQ(dist[0].probability, 1.0f) << temperature;
    std::vector<TokenProbability> scratch;
    params.seed = 3;
    for (uint64_t counter = 0; counter < 50; ++counter) {
      EXPECT_EQ(sample_token(logits, params, 0, counter, scratch), 1) << temperature;
    }
  }
  // Exactly tied best logits share the draw.
  SamplingParams params;
  params.temperature = 1e-45f;
  params.top_k = 0;
  sampling_distribution(std::vector<float>{2.0f, 5.0f, 5.0f}, params, dist);
  ASSERT_GE(dist.size(), 2u);
  EXPECT_EQ(dist[0].probability, 0.5f);
  EXPECT_EQ(dist[1].probability, 0.5f);
  for (size_t i = 2; i < dist.size(); ++i) EXPECT_EQ(dist[i].probability, 0.0f);
}

TEST(Sampler, DrawsFollowTheDistribution) {
  const std::vector<double> target = {0.5, 0.25, 0.125, 0.125};
  const auto logits = logits_of(target);
  SamplingParams params;
  params.temperature = 1.0f;
  params.seed = 7;
  std::vector<TokenProbability> scratch;
  std::vector<int> counts(4, 0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) counts[sample_token(logits, params, /*stream=*/3, /*counter=*/i, scratch)]++;
  double chi_square = 0;
  for (int t = 0; t < 4; ++t) {
    const double expected = target[t] * n;
    chi_square += (counts[t] - expected) * (counts[t] - expected) / expected;
  }
  EXPECT_LT(chi_square, 16.27);  // 3 degrees of freedom, p = 0.001
}

TEST(Sampler, RandomnessDependsOnlyOnSeedStreamAndPosition) {
  EXPECT_EQ(sampling_uniform(1, 2, 3), sampling_uniform(1, 2, 3));
  EXPECT_NE(sampling_uniform(1, 2, 3), sampling_uniform(1, 2, 4));
  EXPECT_NE(sampling_uniform(1, 2, 3), sampling_uniform(1, 3, 3));
  EXPECT_NE(sampling_uniform(1, 2, 3), sampling_uniform(2, 2, 3));
}

TEST(Sampler, ValidationNamesTheParameter) {
  SamplingParams params;
  params.top_p = 1.5f;
  EXPECT_NE(params.validate().message().find("top_p 1.5"), std::string::npos);
  params.top_p = 1.0f;
  params.temperature = -1.0f;
  EXPECT_NE(params.validate().message().find("temperature"), std::string::npos);
}

}  // namespace
}  // namespace so
