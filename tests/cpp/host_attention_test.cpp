// The host KV tier (backend/host_attention.h) against the device path on the CPU backend:
// same K/V pages, same attention output, bit for bit, with ragged rows; the pages and the
// activations' trips outside the device's memory budget.
#include "backend/host_attention.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "base/timer.h"
#include "kv/kv_cache.h"

namespace so {
namespace {

constexpr int kHeads = 4, kKvHeads = 2, kHeadDim = 16;
constexpr int kQDim = kHeads * kHeadDim, kKvDim = kKvHeads * kHeadDim;

KvGeometry geometry() {
  KvGeometry g;
  g.n_layers = 2;
  g.n_kv_heads = kKvHeads;
  g.head_dim = kHeadDim;
  g.page_tokens = 4;
  return g;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& x : out) x = normal(rng);
  return out;
}

// Three rows of a step: a prefill chunk from position 0, four tokens to verify after a
// history of 6, one decode token after 9. Returns the step's attention rows.
struct Step {
  std::vector<int32_t> ids;
  std::vector<AttentionRow> rows;
  int64_t n_tokens = 0;
};

Step build_step(KvCache& kv, std::span<const int32_t> history, std::span<const int32_t> new_tokens) {
  Step step;
  int32_t first = 0;
  for (size_t r = 0; r < history.size(); ++r) {
    const int32_t id = kv.add_row();
    EXPECT_TRUE(kv.reserve(id, history[r] + new_tokens[r]).ok());
    kv.advance(id, history[r]);
    step.ids.push_back(id);
    step.rows.push_back(kv.attention_row(id, first, new_tokens[r]));
    first += new_tokens[r];
  }
  step.n_tokens = first;
  return step;
}

class HostAttentionTest : public ::testing::Test {
 protected:
  // A simulated card of 1 MiB and a 2 GB/s link.
  CpuBackend backend_{{1, 1 << 20, 2.0}};
  AttentionParams params_{kHeads, kKvHeads, kHeadDim, 0.25f};
  const int32_t history_[3] = {0, 6, 9};
  const int32_t new_tokens_[3] = {7, 4, 1};
};

TEST_F(HostAttentionTest, EqualsDeviceAttentionBitForBit) {
  KvCache device_kv(backend_, geometry(), 0, KvPlacement::kDevice);
  KvCache host_kv(backend_, geometry(), 0, KvPlacement::kHost);
  const int64_t device_in_use = backend_.device_bytes_in_use();
  const Step device_step = build_step(device_kv, history_, new_tokens_);
  EXPECT_GT(backend_.device_bytes_in_use(), device_in_use);
  const int64_t before_host_pages = backend_.device_bytes_in_use();
  const Step host_step = build_step(host_kv, history_, new_tokens_);
  EXPECT_EQ(backend_.device_bytes_in_use(), before_host_pages) << "host KV pages must not use device memory";
  EXPECT_EQ(host_kv.bytes_allocated(), device_kv.bytes_allocated());

  HostAttention host(backend_);
  for (int layer = 0; layer < 2; ++layer) {
    // The history's K/V first (as earlier steps wrote them), then the step itself.
    std::vector<AttentionRow> past;
    int32_t first = 0;
    for (size_t r = 0; r < 3; ++r) {
      if (history_[r] == 0) continue;
      past.push_back({first, history_[r], 0, device_kv.pages(device_step.ids[r])});
      first += history_[r];
    }
    const std::vector<float> past_k = random_floats(size_t(first) * kKvDim, 10 + layer);
    const std::vector<float> past_v = random_floats(size_t(first) * kKvDim, 20 + layer);
    const std::vector<float> past_q = random_floats(size_t(first) * kQDim, 30 + layer);
    backend_.kv_store(geometry(), layer, past, past_k.data(), past_v.data());
    std::vector<AttentionRow> host_past = past;
    for (size_t i = 0, r = 0; r < 3; ++r) {
      if (history_[r] == 0) continue;
      host_past[i++].pages = host_kv.pages(host_step.ids[r]);
    }
    std::vector<float> ignored(size_t(first) * kQDim);
    host.run(geometry(), layer, host_past, params_, params_.sinks, first, past_q.data(), past_k.data(), past_v.data(),
             ignored.data(), /*store_only=*/true);

    const int64_t n = device_step.n_tokens;
    const std::vector<float> q = random_floats(size_t(n) * kQDim, 40 + layer);
    const std::vector<float> k = random_floats(size_t(n) * kKvDim, 50 + layer);
    const std::vector<float> v = random_floats(size_t(n) * kKvDim, 60 + layer);
    std::vector<float> device_out(size_t(n) * kQDim), host_out(size_t(n) * kQDim, -1.0f);
    backend_.kv_store(geometry(), layer, device_step.rows, k.data(), v.data());
    backend_.attention(geometry(), layer, device_step.rows, params_, q.data(), device_out.data());
    host.run(geometry(), layer, host_step.rows, params_, params_.sinks, n, q.data(), k.data(), v.data(),
             host_out.data(), false);
    EXPECT_EQ(0, std::memcmp(device_out.data(), host_out.data(), device_out.size() * sizeof(float)))
        << "layer " << layer;
  }
  for (int r = 0; r < 3; ++r) {
    const auto device_pages = device_kv.pages(device_step.ids[r]);
    const auto host_pages = host_kv.pages(host_step.ids[r]);
    ASSERT_EQ(device_pages.size(), host_pages.size());
    for (size_t p = 0; p < device_pages.size(); ++p) {
      // Only the positions written are defined: the rows' histories and new tokens.
      const int positions = std::min(geometry().page_tokens, history_[r] + new_tokens_[r] - int(p) * 4);
      for (int layer = 0; layer < 2; ++layer) {
        for (bool value : {false, true}) {
          for (int head = 0; head < kKvHeads; ++head) {
            const int64_t offset = geometry().offset(layer, value, head);
            EXPECT_EQ(0, std::memcmp(static_cast<uint8_t*>(device_pages[p]) + offset,
                                     static_cast<uint8_t*>(host_pages[p]) + offset, size_t(positions) * kHeadDim * 2))
                << "row " << r << " page " << p;
          }
        }
      }
    }
  }
}

TEST_F(HostAttentionTest, ActivationsCrossTheSimulatedLink) {
  KvCache host_kv(backend_, geometry(), 0, KvPlacement::kHost);
  const Step step = build_step(host_kv, history_, new_tokens_);
  HostAttention host(backend_);
  const int64_t n = step.n_tokens;
  const std::vector<float> q = random_floats(size_t(n) * kQDim, 1), k = random_floats(size_t(n) * kKvDim, 2);
  std::vector<float> out(size_t(n) * kQDim, -7.0f);
  // Store only: k and v go to the host, nothing comes back.
  host.run(geometry(), 0, step.rows, params_, params_.sinks, n, q.data(), k.data(), k.data(), out.data(),
           /*store_only=*/true);
  EXPECT_EQ(host.bytes_to_host(), n * 2 * kKvDim * int64_t(sizeof(float)));
  EXPECT_EQ(host.bytes_to_device(), 0);
  EXPECT_EQ(out[0], -7.0f);
  // Row 0 is a prompt's first chunk: the device attends it in scratch pages, so only the
  // other rows' q (5 tokens) crosses and their output comes back; every row's k and v cross.
  const int64_t stored = host.bytes_to_host();
  const Stopwatch watch;
  host.run(geometry(), 1, step.rows, params_, params_.sinks, n, q.data(), k.data(), k.data(), out.data(), false);
  const int64_t host_tokens = new_tokens_[1] + new_tokens_[2];
  EXPECT_EQ(host.bytes_to_host() - stored, (n * 2 * kKvDim + host_tokens * kQDim) * int64_t(sizeof(float)));
  EXPECT_EQ(host.bytes_to_device(), host_tokens * kQDim * int64_t(sizeof(float)));
  // At 2 GB/s the trips take at least their bytes over the bandwidth (each direction its own).
  const int64_t to_host = host.bytes_to_host() - stored;
  EXPECT_GE(watch.elapsed_seconds(), double(to_host) / 2e9);
  EXPECT_GE(host.transfer_seconds(), double(to_host + host.bytes_to_device()) / 2e9 * 0.99);
  EXPECT_NE(out[0], -7.0f);
  EXPECT_NE(out[size_t(n) * kQDim - 1], -7.0f);
  bool saw_copy = false, saw_compute = false;
  for (const StreamSpan& span : host.take_spans()) {
    saw_copy |= span.bytes > 0;
    saw_compute |= span.label.rfind("cpu attention", 0) == 0;
  }
  EXPECT_TRUE(saw_copy && saw_compute);
}

// Attention sinks (gpt-oss) live in device memory for the device's kernels and in host memory
// for host threads: a prompt's first chunk (attended on the device) must read the device copy,
// the other rows the host copy. (An H200 run found a device kernel given the host copy.) Two
// different sink vectors make the two readers tell apart.
TEST_F(HostAttentionTest, DeviceRowsReadDeviceSinksAndHostThreadsHostSinks) {
  KvCache device_kv(backend_, geometry(), 0, KvPlacement::kDevice);
  KvCache host_kv(backend_, geometry(), 0, KvPlacement::kHost);
  const Step device_step = build_step(device_kv, history_, new_tokens_);
  const Step host_step = build_step(host_kv, history_, new_tokens_);
  HostAttention host(backend_);
  // The histories of rows 1 and 2 (row 0 has none), in both caches.
  std::vector<AttentionRow> past, host_past;
  int32_t first = 0;
  for (size_t r = 1; r < 3; ++r) {
    past.push_back({first, history_[r], 0, device_kv.pages(device_step.ids[r])});
    host_past.push_back({first, history_[r], 0, host_kv.pages(host_step.ids[r])});
    first += history_[r];
  }
  const std::vector<float> past_k = random_floats(size_t(first) * kKvDim, 70);
  const std::vector<float> past_v = random_floats(size_t(first) * kKvDim, 71);
  const std::vector<float> past_q = random_floats(size_t(first) * kQDim, 72);
  std::vector<float> ignored(size_t(first) * kQDim);
  backend_.kv_store(geometry(), 0, past, past_k.data(), past_v.data());
  host.run(geometry(), 0, host_past, params_, nullptr, first, past_q.data(), past_k.data(), past_v.data(),
           ignored.data(), /*store_only=*/true);

  const int64_t n = device_step.n_tokens;
  const std::vector<float> q = random_floats(size_t(n) * kQDim, 73), k = random_floats(size_t(n) * kKvDim, 74),
                           v = random_floats(size_t(n) * kKvDim, 75);
  const std::vector<float> device_sinks = {1.5f, -0.5f, 2.0f, 0.25f}, host_sinks = {-1.0f, 3.0f, 0.5f, -2.0f};
  AttentionParams device_params = params_, host_params = params_;
  device_params.sinks = device_sinks.data();
  host_params.sinks = host_sinks.data();
  std::vector<float> with_device_sinks(size_t(n) * kQDim), with_host_sinks(size_t(n) * kQDim);
  backend_.kv_store(geometry(), 0, device_step.rows, k.data(), v.data());
  backend_.attention(geometry(), 0, device_step.rows, device_params, q.data(), with_device_sinks.data());
  backend_.attention(geometry(), 0, device_step.rows, host_params, q.data(), with_host_sinks.data());
  std::vector<float> out(size_t(n) * kQDim, -1.0f);
  host.run(geometry(), 0, host_step.rows, device_params, host_sinks.data(), n, q.data(), k.data(), v.data(), out.data(),
           false);
  const size_t fresh = size_t(new_tokens_[0]) * kQDim;  // row 0: a first chunk, attended on the device
  ASSERT_NE(0, std::memcmp(with_device_sinks.data(), with_host_sinks.data(), out.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(out.data(), with_device_sinks.data(), fresh * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(out.data() + fresh, with_host_sinks.data() + fresh, (out.size() - fresh) * sizeof(float)));
}

}  // namespace
}  // namespace so
