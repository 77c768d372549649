// CPU streams (backend/cpu/cpu_stream.h): in-order work, events across streams, the
// throttled copy engine, and overlap of copy and compute streams.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_stream.h"
#include "base/timer.h"

namespace so {
namespace {

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

TEST(CpuStream, RunsWorkInOrderAndRecordsSpans) {
  CpuStream stream(StreamRole::kCompute);
  std::vector<int> order;
  for (int i = 0; i < 20; ++i) stream.launch([&order, i] { order.push_back(i); }, "task " + std::to_string(i));
  stream.synchronize();
  ASSERT_EQ(order.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[i], i);
  const auto spans = stream.take_spans();
  ASSERT_EQ(spans.size(), 20u);
  EXPECT_EQ(spans[3].label, "task 3");
  for (const auto& span : spans) EXPECT_LE(span.start_seconds, span.end_seconds);
  EXPECT_TRUE(stream.take_spans().empty());
}

TEST(CpuStream, EventsOrderWorkAcrossStreams) {
  CpuStream producer(StreamRole::kCopy), consumer(StreamRole::kCompute);
  std::atomic<bool> produced{false};
  bool seen = false;
  producer.launch([&] {
    sleep_ms(30);
    produced = true;
  }, "produce");
  auto ready = producer.record();
  EXPECT_FALSE(ready->done());
  consumer.wait(ready);
  consumer.launch([&] { seen = produced.load(); }, "consume");
  consumer.synchronize();
  EXPECT_TRUE(seen);
  EXPECT_TRUE(ready->done());
}

TEST(CpuStream, ThrottledCopiesTakeBytesOverBandwidth) {
  CpuStream link(StreamRole::kCopy, /*link_bytes_per_second=*/1e9);
  std::vector<uint8_t> source(8 << 20), destination(8 << 20, 0);
  for (size_t i = 0; i < source.size(); ++i) source[i] = static_cast<uint8_t>(i * 7);
  const double start = now_seconds();
  link.copy(destination.data(), source.data(), source.size(), "weights");
  link.synchronize();
  const double seconds = now_seconds() - start;
  EXPECT_GE(seconds, 0.98 * double(source.size()) / 1e9);
  EXPECT_EQ(source, destination);
  const auto spans = link.take_spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].bytes, int64_t(source.size()));
}

TEST(CpuStream, CopyAndComputeOverlap) {
  // Layer i's compute waits for layer i's copy; copies run ahead. Serially the 6 copies
  // and 6 computes take 12 * 20 ms; overlapped about 7 * 20 ms.
  CpuBackendOptions options;
  options.n_threads = 1;
  options.sim_link_gbps = 0.1;  // 2 MB in 20 ms
  CpuBackend backend(options);
  auto copy = backend.create_stream(StreamRole::kCopy);
  auto compute = backend.create_stream(StreamRole::kCompute);
  std::vector<uint8_t> host(2'000'000, 1), device(2'000'000);
  const double start = now_seconds();
  for (int layer = 0; layer < 6; ++layer) {
    copy->copy(device.data(), host.data(), host.size(), "layer");
    compute->wait(copy->record());
    compute->launch([] { sleep_ms(20); }, "compute");
  }
  compute->synchronize();
  const double seconds = now_seconds() - start;
  EXPECT_LT(seconds, 0.8 * 12 * 0.020) << "copies and compute ran one after the other";
  EXPECT_GE(seconds, 7 * 0.020 * 0.95);
}

}  // namespace
}  // namespace so
