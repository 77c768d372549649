// base/compute_gate.h: one holder at a time, re-entrant, normal priority first.
#include "base/compute_gate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace so {
namespace {

TEST(ComputeGate, OneHolderAtATimeAndReentrant) {
  ComputeGate gate;
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  auto work = [&](bool low) {
    std::optional<ComputeGate::LowPriorityScope> priority;
    if (low) priority.emplace();
    for (int i = 0; i < 2000; ++i) {
      ComputeGate::Scope outer(gate);
      ComputeGate::Scope nested(gate);  // an op calling an op
      const int now = inside.fetch_add(1) + 1;
      most.store(std::max(most.load(), now));
      inside.fetch_sub(1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(work, t % 2 == 1);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(most.load(), 1);
}

TEST(ComputeGate, AWaitingNormalThreadGoesBeforeWaitingLowOnes) {
  ComputeGate gate;
  std::vector<char> order;
  std::mutex order_mutex;
  std::atomic<int> started{0};
  gate.enter();  // held while both line up
  std::thread low([&] {
    ComputeGate::LowPriorityScope priority;
    started.fetch_add(1);
    ComputeGate::Scope turn(gate);
    std::lock_guard lock(order_mutex);
    order.push_back('L');
  });
  while (started.load() < 1) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the low thread is waiting
  std::thread normal([&] {
    started.fetch_add(1);
    ComputeGate::Scope turn(gate);
    std::lock_guard lock(order_mutex);
    order.push_back('N');
  });
  while (started.load() < 2) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  gate.exit();
  low.join();
  normal.join();
  EXPECT_EQ(order, (std::vector<char>{'N', 'L'}));
}

}  // namespace
}  // namespace so
