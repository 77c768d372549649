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
  CpuStream link(StreamRole::kCopy, std::make_shared<SimulatedLink>(1e9));
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

TEST(CpuStream, CopiesShareTheirDirectionOfTheLink) {
  // Two host-to-device streams take turns at 0.1 GB/s; the device-to-host one runs beside them.
  // note: a slow link and small copies, so the throttle and not the memcpy sets the times (under
  // ThreadSanitizer on two cores the memcpy of 16 MiB copies took a third of them).
  CpuBackendOptions options;
  options.n_threads = 1;
  options.sim_link_gbps = 0.1;
  CpuBackend backend(options);
  auto weights = backend.create_stream(StreamRole::kCopy);
  auto outputs = backend.create_stream(StreamRole::kCopy);
  auto inputs = backend.create_stream(StreamRole::kCopyToHost);
  std::vector<uint8_t> a(4 << 20, 1), b(4 << 20), c(4 << 20, 2), d(4 << 20), e(4 << 20, 3), f(4 << 20);
  const double start = now_seconds();
  weights->copy(b.data(), a.data(), a.size(), "weights");
  outputs->copy(d.data(), c.data(), c.size(), "attention output");
  inputs->copy(f.data(), e.data(), e.size(), "q, k, v");
  inputs->synchronize();
  const double one_way = now_seconds() - start;
  weights->synchronize();
  outputs->synchronize();
  const double both = now_seconds() - start;
  const double copy_seconds = double(a.size()) / 0.1e9;
  EXPECT_GE(both, 2 * copy_seconds * 0.98) << "two copies toward the device share the link";
  // Held up behind the two, the third would end with them (about 3 copy times).
  EXPECT_LT(one_way, 1.6 * copy_seconds) << "the other direction is not held up by them";
  EXPECT_EQ(b, a);
  EXPECT_EQ(f, e);
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
