// Planner properties (issue 4): budgets hold, more bandwidth never predicts less
// throughput, k = 0 is the no-speculation plan, and tau follows its closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "planner/planner.h"
#include "runtime/replanner.h"

namespace so {
namespace {

// A llama-like shape with Q4_1 layers and a Q8_0 head.
ModelShape llama_shape(int n_layers, int dim, int ffn_dim, int n_vocab) {
  ModelShape shape;
  shape.name = "test";
  shape.n_layers = n_layers;
  shape.dim = dim;
  shape.ffn_dim = ffn_dim;
  shape.n_vocab = n_vocab;
  shape.n_heads = dim / 64;
  shape.n_kv_heads = dim / 4 / 64;
  shape.head_dim = 64;
  shape.n_ctx = 8192;
  auto matrix = [](DType dtype, int64_t rows, int64_t cols, double bytes_per_param) {
    return MatrixShape{dtype, rows, cols, int64_t(double(rows * cols) * bytes_per_param), 1.0};
  };
  for (int64_t rows : {dim, dim / 4, dim / 4, dim}) shape.layer.push_back(matrix(DType::kQ4_1, rows, dim, 0.625));
  for (int i = 0; i < 2; ++i) shape.layer.push_back(matrix(DType::kQ4_1, ffn_dim, dim, 0.625));
  shape.layer.push_back(matrix(DType::kQ4_1, dim, ffn_dim, 0.625));
  for (const MatrixShape& m : shape.layer) shape.layer_bytes += m.bytes;
  shape.head = matrix(DType::kQ8_0, n_vocab, dim, 1.0625);
  shape.kv_bytes_per_token = int64_t(n_layers) * 2 * (dim / 4) * 2;
  return shape;
}

HardwareProfile test_profile(double link_gbps) {
  HardwareProfile profile;
  profile.backend = "test";
  profile.n_threads = 2;
  profile.copy_pinned_gbps = link_gbps;
  profile.copy_pageable_gbps = link_gbps / 2;
  profile.disk_read_gbps = 1;
  profile.attention_gflops = 20;
  profile.cpu_attention_gflops = 20;
  profile.step_overhead_seconds = 2e-4;
  profile.device_memory_bytes = int64_t(1) << 30;
  profile.host_memory_bytes = int64_t(16) << 30;
  profile.matmul[DType::kQ4_1] = {10, 60};
  profile.matmul[DType::kQ8_0] = {12, 70};
  return profile;
}

PlanInput random_input(std::mt19937& rng) {
  std::uniform_int_distribution<int> layers(2, 40), width(2, 16), prompts(1, 300), lengths(1, 600);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  PlanInput input;
  const int dim = 64 * width(rng);
  input.target = llama_shape(layers(rng), dim, dim * 3, 32000);
  input.profile = test_profile(0.5 + 30 * unit(rng));
  input.draft = static_cast<DraftSource>(rng() % 4);
  input.draft_model = input.draft == DraftSource::kSelf ? input.target.first_layers(2) : llama_shape(2, 256, 768, 32000);
  input.alpha = unit(rng);
  input.workload = {prompts(rng), lengths(rng), lengths(rng)};
  const int64_t weights = input.target.device_bytes();
  input.device_budget_bytes = int64_t(double(weights) * (0.05 + 1.2 * unit(rng)));
  input.host_budget_bytes = weights * 4;
  return input;
}

TEST(Planner, TauIsTheExpectedCommittedTokensPerRow) {
  for (double alpha : {0.0, 0.3, 0.7, 0.95}) {
    for (int k : {0, 1, 4, 8}) {
      double sum = 0;  // sum_{i=0..k} alpha^i: P(first i drafts accepted)
      for (int i = 0; i <= k; ++i) sum += std::pow(alpha, i);
      EXPECT_NEAR(expected_tokens_per_pass(alpha, k), sum, 1e-12) << alpha << " " << k;
    }
  }
  EXPECT_DOUBLE_EQ(expected_tokens_per_pass(1.0, 5), 6.0);
}

TEST(Planner, PlansNeverExceedTheBudgets) {
  std::mt19937 rng(7);
  int planned = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const PlanInput input = random_input(rng);
    Result<Plan> plan = make_plan(input);
    if (!plan.ok()) {
      EXPECT_EQ(plan.status().code(), ErrorCode::kResourceExhausted) << plan.status().to_string();
      continue;
    }
    ++planned;
    const int64_t ring = plan->streamed_bytes > 0 ? plan->ring_slots * input.target.layer_bytes : 0;
    EXPECT_LE(plan->resident_bytes + ring, input.device_budget_bytes) << plan->describe();
    EXPECT_LE(plan->device_bytes, input.profile.device_memory_bytes) << plan->describe();
    EXPECT_LE(plan->host_bytes - (plan->kv_on_device ? 0 : plan->kv_bytes), input.host_budget_bytes);
    EXPECT_LE(plan->host_bytes, input.profile.host_memory_bytes);
    EXPECT_EQ(plan->resident_bytes + plan->streamed_bytes, input.target.device_bytes());
    EXPECT_GT(plan->tokens_per_second, 0);
    EXPECT_LE(plan->rows, std::max(1, input.workload.n_prompts));
    const int pass_rows = plan->interleaved ? (plan->rows + 1) / 2 : plan->rows;
    EXPECT_GE(plan->prefill_chunk, pass_rows * (plan->draft_length + 1)) << "a pass's tokens fit its step";
  }
  EXPECT_GT(planned, 150);  // the random budgets mostly fit
}

TEST(Planner, MoreBandwidthNeverPredictsLessThroughput) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    PlanInput input = random_input(rng);
    Result<Plan> slow = make_plan(input);
    if (!slow.ok()) continue;
    for (double factor : {1.5, 4.0}) {
      PlanInput faster = input;
      faster.profile.copy_pinned_gbps *= factor;
      Result<Plan> fast = make_plan(faster);
      ASSERT_TRUE(fast.ok()) << fast.status().to_string();
      EXPECT_GE(fast->tokens_per_second, slow->tokens_per_second * (1 - 1e-12));
    }
    PlanInput faster_compute = input;
    for (auto& [_, speed] : faster_compute.profile.matmul) speed.gflops *= 2;
    EXPECT_GE(make_plan(faster_compute)->tokens_per_second, slow->tokens_per_second * (1 - 1e-12));
  }
}

TEST(Planner, DraftLengthZeroIsTheNoSpeculationPlan) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 100; ++trial) {
    PlanInput input = random_input(rng);
    if (input.draft == DraftSource::kNone) input.draft = DraftSource::kModel;
    PlanInput plain = input;
    plain.draft = DraftSource::kNone;
    for (int rows : {1, 8}) {
      Result<Plan> k0 = evaluate_plan(input, {rows, 0, 2, true, false, 512});
      Result<Plan> none = evaluate_plan(plain, {rows, 0, 2, true, false, 512});
      ASSERT_EQ(k0.ok(), none.ok());
      if (!k0.ok()) continue;
      EXPECT_EQ(k0->to_json(), none->to_json());
    }
    input.max_draft = 0;
    Result<Plan> capped = make_plan(input), no_spec = make_plan(plain);
    ASSERT_EQ(capped.ok(), no_spec.ok());
    if (capped.ok()) {
      EXPECT_EQ(capped->to_json(), no_spec->to_json());
    }
  }
}

TEST(Planner, DraftsWhenCopiesDominateAndAcceptanceIsHigh) {
  PlanInput input;
  input.target = llama_shape(32, 1024, 3072, 32000);
  input.profile = test_profile(1.0);
  input.draft = DraftSource::kNgram;
  input.workload = {4, 200, 128};  // few rows: batching alone cannot fill the pass
  input.device_budget_bytes = input.target.device_bytes() / 4;
  input.host_budget_bytes = input.target.device_bytes() * 2;
  input.alpha = 0.8;
  Result<Plan> plan = make_plan(input);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_GT(plan->draft_length, 0) << plan->describe();
  PlanInput plain = input;
  plain.draft = DraftSource::kNone;
  EXPECT_GT(plan->tokens_per_second, make_plan(plain)->tokens_per_second * 1.2) << plan->describe();
  input.alpha = 0.0;  // drafts that are never accepted only cost
  plan = make_plan(input);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->draft_length, 0) << plan->describe();
}

TEST(Planner, InterleavingWhenTheDraftIsAsSlowAsThePass) {
  // A draft model half the target's size over a fast link: drafting for every row costs as
  // much as a pass, so drafting one half while the other verifies wins.
  PlanInput input;
  input.target = llama_shape(32, 1024, 3072, 32000);
  input.draft = DraftSource::kModel;
  input.draft_model = llama_shape(16, 1024, 3072, 32000);
  input.profile = test_profile(2.0);
  input.workload = {64, 100, 128};
  input.device_budget_bytes = input.target.device_bytes() / 4;
  input.alpha = 0.8;
  input.fixed_rows = 32;
  input.fixed_draft = 4;
  input.fixed_schedule = 0;
  Result<Plan> serial = make_plan(input);
  input.fixed_schedule = 1;
  Result<Plan> interleaved = make_plan(input);
  ASSERT_TRUE(serial.ok() && interleaved.ok());
  EXPECT_TRUE(interleaved->interleaved && !serial->interleaved);
  EXPECT_EQ(interleaved->draft_subbatch, 16);
  // A pass verifies half the rows and lasts max(copy, compute + draft) of a half.
  EXPECT_DOUBLE_EQ(interleaved->decode.pass, std::max(interleaved->decode.copy,
                                                      interleaved->decode.compute + interleaved->decode.draft));
  EXPECT_NEAR(interleaved->tokens_per_pass, 16 * expected_tokens_per_pass(0.8, 4), 1e-9);
  input.fixed_schedule = -1;
  Result<Plan> best = make_plan(input);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(best->interleaved, interleaved->tokens_per_second > serial->tokens_per_second) << best->describe();
}

TEST(Planner, MeasuredStepCostsReplaceTheMatrixEstimate) {
  PlanInput input;
  input.target = llama_shape(8, 512, 1536, 32000);
  input.profile = test_profile(10);
  const StepShape step{16, 16, 0.0, true};
  const double estimated = step_compute_seconds(input.target, input.profile, step);
  StepCost cost;
  cost.verify = {{1, 0.010}, {8, 0.012}, {32, 0.036}};
  cost.prefill = {{64, 0.050}, {256, 0.150}};
  input.target.measured = cost;
  // Interpolated between points, extrapolated along the last segment.
  EXPECT_DOUBLE_EQ(step_compute_seconds(input.target, input.profile, step), 0.012 + 8 * 0.001);
  EXPECT_DOUBLE_EQ(step_compute_seconds(input.target, input.profile, StepShape{64, 64, 0.0, true}), 0.036 + 32 * 0.001);
  EXPECT_DOUBLE_EQ(step_compute_seconds(input.target, input.profile, StepShape{160, 2, 0.0, true}), 0.100);
  EXPECT_NE(estimated, step_compute_seconds(input.target, input.profile, step));
  // A self-draft of half the layers: half the layers' share, all of the head's.
  const ModelShape half = input.target.first_layers(4);
  const double head_share = double(input.target.head.bytes) / double(input.target.device_bytes());
  EXPECT_NEAR(step_compute_seconds(half, input.profile, step), 0.020 * (head_share + (1 - head_share) / 2), 1e-12);
}

TEST(Replanner, PlansAgainWhenTheMeasuredAcceptanceDrifts) {
  PlanInput input;
  input.target = llama_shape(32, 1024, 3072, 32000);
  input.profile = test_profile(1.0);
  input.draft = DraftSource::kNgram;
  input.workload = {4, 200, 128};
  input.device_budget_bytes = input.target.device_bytes() / 4;
  input.alpha = 0.8;
  Result<Plan> plan = make_plan(input);
  ASSERT_TRUE(plan.ok());
  ASSERT_GT(plan->draft_length, 0);
  Replanner replanner(input, *plan, /*min_drafted=*/100, /*drift=*/0.1);
  EXPECT_FALSE(replanner.observe(1, 50, 0));    // too few drafts to judge
  EXPECT_FALSE(replanner.observe(2, 150, 115));  // 0.77: within the drift
  const std::optional<Replan> replan = replanner.observe(3, 400, 115);  // 0 of the last 250 accepted
  ASSERT_TRUE(replan);
  EXPECT_DOUBLE_EQ(replan->measured_alpha, 0.0);
  EXPECT_EQ(replan->plan.draft_length, 0);
  EXPECT_EQ(replan->plan.ring_slots, plan->ring_slots);  // placement stays
}

TEST(Planner, BudgetBelowTheRingIsAClearError) {
  PlanInput input;
  input.target = llama_shape(8, 512, 1536, 32000);
  input.profile = test_profile(10);
  input.device_budget_bytes = input.target.layer_bytes;  // less than two ring slots
  Result<Plan> plan = make_plan(input);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("ring"), std::string::npos) << plan.status().to_string();
}

TEST(HardwareProfile, JsonRoundTripAndErrors) {
  const HardwareProfile profile = test_profile(3.5);
  Result<HardwareProfile> back = HardwareProfile::from_json(profile.to_json());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->to_json(), profile.to_json());
  EXPECT_FALSE(HardwareProfile::from_json("not json").ok());
  Result<HardwareProfile> missing = HardwareProfile::from_json(R"({"n_threads": 2})");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("copy_pinned_gbps"), std::string::npos);
}

}  // namespace
}  // namespace so

namespace so {
namespace {

TEST(Planner, HostKvLiftsTheRowCapWhenDeviceMemoryIsShort) {
  // A 32-layer target streamed over a slow link from a device whose memory holds the ring
  // and little else: KV on the device caps the rows, in host memory it does not.
  PlanInput input;
  input.target = llama_shape(32, 1024, 3072, 32000);
  input.profile = test_profile(0.5);
  input.workload = {1024, 200, 64};
  input.device_budget_bytes = input.target.layer_bytes * 3;
  input.profile.device_memory_bytes = input.device_budget_bytes + (int64_t(300) << 20);
  input.fixed_kv = 0;
  Result<Plan> device = make_plan(input);
  input.fixed_kv = 1;
  Result<Plan> host = make_plan(input);
  ASSERT_TRUE(device.ok() && host.ok()) << device.status().to_string() << host.status().to_string();
  EXPECT_TRUE(device->kv_on_device);
  EXPECT_FALSE(host->kv_on_device);
  EXPECT_GT(host->rows, 2 * device->rows) << device->describe() << host->describe();
  EXPECT_GT(host->tokens_per_second, device->tokens_per_second) << device->describe() << host->describe();
  EXPECT_GT(host->decode.host_attention, 0);
  EXPECT_GE(host->host_bytes, host->kv_bytes);
  EXPECT_LT(host->device_bytes, input.profile.device_memory_bytes);
  input.fixed_kv = -1;
  Result<Plan> best = make_plan(input);
  ASSERT_TRUE(best.ok());
  EXPECT_FALSE(best->kv_on_device) << best->describe();
}

TEST(Planner, HostAttentionCostsItsTransfersAndCpuTime) {
  const ModelShape target = llama_shape(8, 512, 1536, 32000);
  HardwareProfile profile = test_profile(1.0);
  const StepShape on_device{256, 256, 256.0 * 300, true};
  StepShape on_host = on_device;
  on_host.kv_on_device = false;
  EXPECT_DOUBLE_EQ(attention_seconds(target, profile, on_device),
                   8 * 4.0 * 64 * 8 * 256.0 * 300 / (profile.attention_gflops * 1e9));
  // Twice as slow host threads and half the link: more than twice the time.
  const double host = attention_seconds(target, profile, on_host);
  profile.cpu_attention_gflops /= 2;
  profile.copy_pinned_gbps /= 2;
  EXPECT_NEAR(attention_seconds(target, profile, on_host), 2 * host - 8 * 2 * profile.op_overhead_seconds, 1e-12);
  const double transfer = 8 * 256.0 * (2 * 512 + 2 * 128) * 4 / 0.5e9;
  EXPECT_GT(attention_seconds(target, profile, on_host), transfer);
}

}  // namespace
}  // namespace so
