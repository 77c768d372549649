// The small ops: reference semantics on known values, every ISA against the reference, and
// batch invariance (a row's result does not depend on the rest of the batch).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "kernels_test_util.h"

namespace so::cpu {
namespace {

using testing::random_floats;
using testing::runnable_isas;

TEST(ReferenceOps, RmsnormKnownValues) {
  const float x[4] = {1, 2, 3, 4};
  const float w[4] = {1, 0.5f, 2, -1};
  float out[4];
  reference::rmsnorm(x, w, 0.0f, 1, 4, out);
  const float scale = 1.0f / std::sqrt(7.5f);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[i], x[i] * scale * w[i]);
}

TEST(ReferenceOps, RopeRotatesPairsByPositionTimesFrequency) {
  RopeParams params;
  params.n_rot = 4;
  params.theta_base = 10000.0f;
  const int32_t position = 3;
  // head_dim 6: dims 4 and 5 pass through; pair frequencies 1 and 10000^(-1/2) = 0.01.
  const float in[6] = {1, 2, 3, 4, 5, 6};
  const double angles[2] = {3.0, 0.03};
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    params.style = style;
    float x[6];
    std::copy(in, in + 6, x);
    reference::rope(x, std::span(&position, 1), 1, 6, params);
    // Normal pairs (0,1), (2,3); NeoX pairs (0,2), (1,3).
    const int pairs[2][2] = {{0, style == RopeStyle::kNormal ? 1 : 2}, {style == RopeStyle::kNormal ? 2 : 1, 3}};
    for (int p = 0; p < 2; ++p) {
      const double c = std::cos(angles[p]), s = std::sin(angles[p]);
      const double a = in[pairs[p][0]], b = in[pairs[p][1]];
      EXPECT_NEAR(x[pairs[p][0]], a * c - b * s, 1e-5);
      EXPECT_NEAR(x[pairs[p][1]], a * s + b * c, 1e-5);
    }
    EXPECT_EQ(x[4], 5.0f);
    EXPECT_EQ(x[5], 6.0f);
  }
}

TEST(ReferenceOps, RopeYarnExtrapolatesHighFrequenciesAndInterpolatesLowOnes) {
  RopeParams params;
  params.n_rot = 128;
  params.theta_base = 10000.0f;
  params.freq_scale = 0.25f;
  params.ext_factor = 1.0f;
  params.attn_factor = 1.0f;
  params.n_ctx_orig = 4096;
  const int32_t position = 100;
  std::vector<float> x(128, 0.0f);
  x[0] = 1.0f;    // pair 0 (dims 0, 1): below the correction range, extrapolated angle = position
  x[126] = 1.0f;  // pair 63: above it, interpolated angle = position * freq * freq_scale
  reference::rope(x.data(), std::span(&position, 1), 1, 128, params);
  const double mscale = 1.0 + 0.1 * std::log(4.0);
  EXPECT_NEAR(x[0], std::cos(100.0) * mscale, 1e-4);
  EXPECT_NEAR(x[1], std::sin(100.0) * mscale, 1e-4);
  const double angle63 = 100.0 * std::pow(10000.0, -126.0 / 128.0) * 0.25;
  EXPECT_NEAR(x[126], std::cos(angle63) * mscale, 1e-5);
  EXPECT_NEAR(x[127], std::sin(angle63) * mscale, 1e-5);
}

TEST(ReferenceOps, RopeFreqFactorsDivideTheta) {
  RopeParams params;
  params.n_rot = 2;
  const float factors[1] = {4.0f};
  params.freq_factors = factors;
  const int32_t position = 2;
  float x[2] = {1, 0};
  reference::rope(x, std::span(&position, 1), 1, 2, params);
  EXPECT_NEAR(x[0], std::cos(0.5), 1e-6);
  EXPECT_NEAR(x[1], std::sin(0.5), 1e-6);
}

TEST(ReferenceOps, SwigluSoftmaxArgmaxKnownValues) {
  const float gate[3] = {1.0f, 0.0f, -2.0f}, up[3] = {2.0f, 5.0f, 1.0f};
  float out[3];
  reference::swiglu(gate, up, out, 3);
  EXPECT_FLOAT_EQ(out[0], 2.0f / (1.0f + std::exp(-1.0f)));
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_FLOAT_EQ(out[2], -2.0f / (1.0f + std::exp(2.0f)));

  float logits[6] = {1, 2, 3, -INFINITY, 0, -INFINITY};
  reference::softmax(logits, 2, 3);
  const double z = std::exp(-2.0) + std::exp(-1.0) + 1.0;
  EXPECT_NEAR(logits[0], std::exp(-2.0) / z, 1e-7);
  EXPECT_NEAR(logits[2], 1.0 / z, 1e-7);
  EXPECT_EQ(logits[3], 0.0f);
  EXPECT_EQ(logits[4], 1.0f);

  const float values[8] = {1, 7, 3, 7, -1, -1, -5, -1};
  int32_t index[2];
  reference::argmax(values, 2, 4, index);
  EXPECT_EQ(index[0], 1);  // ties go to the lowest index
  EXPECT_EQ(index[1], 0);
}

// Every ISA and thread count against the reference.
class OpsAgainstReference : public ::testing::TestWithParam<Isa> {};

TEST_P(OpsAgainstReference, Rmsnorm) {
  const Isa isa = GetParam();
  for (int64_t dim : {1, 7, 64, 576, 1000}) {
    const int64_t n_rows = 9;
    const std::vector<float> x = random_floats(n_rows * dim, 1, 3.0f), w = random_floats(dim, 2);
    std::vector<float> expected(n_rows * dim), out(n_rows * dim);
    reference::rmsnorm(x.data(), w.data(), 1e-5f, n_rows, dim, expected.data());
    ThreadPool pool(2);
    Kernels(pool, isa).rmsnorm(x.data(), w.data(), 1e-5f, n_rows, dim, out.data());
    EXPECT_LE(testing::normalized_error(out.data(), expected.data(), out.size()), 1e-6) << dim;
  }
}

TEST_P(OpsAgainstReference, Rope) {
  const Isa isa = GetParam();
  const float factors[32] = {1, 1, 2, 2, 4, 4, 8, 8, 1, 2, 3, 4, 5, 6, 7, 8,
                             1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9};
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    for (int yarn = 0; yarn < 2; ++yarn) {
      for (auto [head_dim, n_rot] : {std::pair{64, 64}, std::pair{128, 64}, std::pair{80, 32}, std::pair{6, 2}}) {
        RopeParams params;
        params.style = style;
        params.n_rot = n_rot;
        params.theta_base = 500000.0f;
        if (yarn) {
          params.freq_scale = 0.125f;
          params.ext_factor = 1.0f;
          params.attn_factor = 0.9f;
          params.n_ctx_orig = 8192;
          params.freq_factors = n_rot / 2 <= 32 ? factors : nullptr;
        }
        const int64_t n_heads = 3;
        const std::vector<int32_t> positions = {0, 1, 5, 1000, 77777, 3};
        const std::vector<float> x = random_floats(positions.size() * n_heads * head_dim, 4);
        std::vector<float> expected = x, out = x;
        reference::rope(expected.data(), positions, n_heads, head_dim, params);
        ThreadPool pool(2);
        Kernels(pool, isa).rope(out.data(), positions, n_heads, head_dim, params);
        EXPECT_LE(testing::normalized_error(out.data(), expected.data(), out.size()), 1e-6)
            << head_dim << " " << n_rot << " yarn " << yarn;
      }
    }
  }
}

TEST_P(OpsAgainstReference, SwigluAddSoftmaxArgmax) {
  const Isa isa = GetParam();
  ThreadPool pool(2);
  Kernels kernels(pool, isa);
  for (int64_t n : {1, 5, 8, 13, 1536, 40000}) {
    const std::vector<float> gate = random_floats(n, 5, 4.0f), up = random_floats(n, 6);
    std::vector<float> expected(n), out(n);
    reference::swiglu(gate.data(), up.data(), expected.data(), n);
    kernels.swiglu(gate.data(), up.data(), out.data(), n);
    EXPECT_LE(testing::normalized_error(out.data(), expected.data(), n), 1e-6) << "swiglu " << n;

    kernels.add(gate.data(), up.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], gate[i] + up[i]);

    const int64_t n_rows = 3;
    std::vector<float> logits = random_floats(n_rows * n, 7, 5.0f);
    std::vector<int32_t> expected_index(n_rows), index(n_rows);
    reference::argmax(logits.data(), n_rows, n, expected_index.data());
    kernels.argmax(logits.data(), n_rows, n, index.data());
    EXPECT_EQ(index, expected_index) << "argmax " << n;

    std::vector<float> probabilities = logits;
    reference::softmax(logits.data(), n_rows, n);
    kernels.softmax(probabilities.data(), n_rows, n);
    EXPECT_LE(testing::normalized_error(probabilities.data(), logits.data(), n_rows * n), 1e-6) << "softmax " << n;
  }
}

TEST_P(OpsAgainstReference, ArgmaxWithNaNsAndInfinities) {
  ThreadPool pool(1);
  Kernels kernels(pool, GetParam());
  const std::vector<std::vector<float>> rows = {{NAN, 1, 2, 3, 4, 5, 6, 7, 8, 9},
                                                {1, NAN, 9, 2, 9, NAN, 0, 0, 0, 0},
                                                {-INFINITY, -INFINITY, -INFINITY, -1},
                                                {-INFINITY, -INFINITY},
                                                {0.0f, -0.0f, 0.0f, -1.0f},
                                                {-0.0f, 0.0f, 0.0f, -1.0f, 0, 0, 0, 0, 0, 0, 0},
                                                {1, 2, 3, 4, 5, 6, 7, 8, 9, INFINITY}};
  for (const std::vector<float>& row : rows) {
    int32_t expected, index;
    reference::argmax(row.data(), 1, static_cast<int64_t>(row.size()), &expected);
    kernels.argmax(row.data(), 1, static_cast<int64_t>(row.size()), &index);
    EXPECT_EQ(index, expected) << row.size();
  }
}

TEST_P(OpsAgainstReference, AddBias) {
  ThreadPool pool(2);
  const int64_t n_rows = 5, dim = 77;
  std::vector<float> x = random_floats(n_rows * dim, 8);
  const std::vector<float> bias = random_floats(dim, 9), original = x;
  Kernels(pool, GetParam()).add_bias(x.data(), bias.data(), n_rows, dim);
  for (int64_t i = 0; i < n_rows * dim; ++i) ASSERT_EQ(x[i], original[i] + bias[i % dim]);
}

INSTANTIATE_TEST_SUITE_P(Isas, OpsAgainstReference, ::testing::ValuesIn(runnable_isas()),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

// Batch invariance of the small ops: a probe row alone equals the probe inside batches.
TEST(OpsBatchInvariance, EveryOpBitForBit) {
  const int64_t dim = 576 + 3, head_dim = 64, n_heads = 3;
  RopeParams rope_params;
  rope_params.n_rot = 64;
  const std::vector<float> probe = random_floats(dim, 1, 2.0f), weight = random_floats(dim, 2);
  const std::vector<float> probe_heads = random_floats(n_heads * head_dim, 3);
  const int32_t probe_position = 321;
  for (Isa isa : runnable_isas()) {
    for (int n_threads : {1, 2}) {
      ThreadPool pool(n_threads);
      Kernels kernels(pool, isa);
      std::vector<float> norm_alone(dim), soft_alone = probe, swiglu_alone(dim), rope_alone = probe_heads;
      int32_t argmax_alone;
      kernels.rmsnorm(probe.data(), weight.data(), 1e-6f, 1, dim, norm_alone.data());
      kernels.softmax(soft_alone.data(), 1, dim);
      kernels.argmax(probe.data(), 1, dim, &argmax_alone);
      kernels.swiglu(probe.data(), weight.data(), swiglu_alone.data(), dim);
      kernels.rope(rope_alone.data(), std::span(&probe_position, 1), n_heads, head_dim, rope_params);
      for (int64_t batch = 2; batch <= 70; ++batch) {
        const int64_t position = (batch * 7 + 3) % batch;
        std::vector<float> x = random_floats(batch * dim, static_cast<uint32_t>(batch), 2.0f);
        std::copy(probe.begin(), probe.end(), x.begin() + position * dim);
        std::vector<float> out(batch * dim);
        kernels.rmsnorm(x.data(), weight.data(), 1e-6f, batch, dim, out.data());
        ASSERT_TRUE(testing::bitwise_equal(out.data() + position * dim, norm_alone.data(), dim)) << batch;
        std::vector<int32_t> indices(batch);
        kernels.argmax(x.data(), batch, dim, indices.data());
        ASSERT_EQ(indices[position], argmax_alone);
        // swiglu over the flat batch: the probe sits at an offset that is not a multiple of 8.
        std::vector<float> up(batch * dim);
        for (int64_t r = 0; r < batch; ++r) std::copy(weight.begin(), weight.end(), up.begin() + r * dim);
        kernels.swiglu(x.data(), up.data(), out.data(), batch * dim);
        ASSERT_TRUE(testing::bitwise_equal(out.data() + position * dim, swiglu_alone.data(), dim)) << batch;
        std::vector<float> summed(batch * dim), biased = x;
        kernels.add(x.data(), up.data(), summed.data(), batch * dim);
        kernels.add_bias(biased.data(), weight.data(), batch, dim);
        for (int64_t i = 0; i < dim; ++i) {
          ASSERT_EQ(summed[position * dim + i], probe[i] + weight[i]);
          ASSERT_EQ(biased[position * dim + i], probe[i] + weight[i]);
        }
        kernels.softmax(x.data(), batch, dim);
        ASSERT_TRUE(testing::bitwise_equal(x.data() + position * dim, soft_alone.data(), dim)) << batch;

        std::vector<float> heads = random_floats(batch * n_heads * head_dim, 50);
        std::copy(probe_heads.begin(), probe_heads.end(), heads.begin() + position * n_heads * head_dim);
        std::vector<int32_t> positions(batch);
        std::iota(positions.begin(), positions.end(), 7);
        positions[position] = probe_position;
        kernels.rope(heads.data(), positions, n_heads, head_dim, rope_params);
        ASSERT_TRUE(
            testing::bitwise_equal(heads.data() + position * n_heads * head_dim, rope_alone.data(), n_heads * head_dim))
            << batch;
      }
    }
  }
}

}  // namespace
}  // namespace so::cpu
