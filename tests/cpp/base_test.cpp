#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/strings.h"
#include "base/thread_pool.h"

namespace so {
namespace {

TEST(Strings, ParseByteSizeAcceptsSuffixes) {
  EXPECT_EQ(parse_byte_size("1000"), 1000u);
  EXPECT_EQ(parse_byte_size("4K"), 4096u);
  EXPECT_EQ(parse_byte_size("24G"), 24ull << 30);
  EXPECT_EQ(parse_byte_size("24GiB"), 24ull << 30);
  EXPECT_EQ(parse_byte_size("1.5M"), 1572864u);
  EXPECT_EQ(parse_byte_size(" 2m "), 2u << 20);
}

TEST(Strings, ParseByteSizeRejectsJunk) {
  EXPECT_FALSE(parse_byte_size(""));
  EXPECT_FALSE(parse_byte_size("G"));
  EXPECT_FALSE(parse_byte_size("-1G"));
  EXPECT_FALSE(parse_byte_size("12X"));
  EXPECT_FALSE(parse_byte_size("nanG"));
}

TEST(Strings, QuoteEscapesBinary) {
  EXPECT_EQ(quote_for_message(std::string("a\"b\x01", 4)), "\"a\\\"b\\x01\"");
  EXPECT_EQ(quote_for_message("abcdef", 3), "\"abc...\"");
}

Result<int> half_of(int x) {
  if (x % 2) return invalid_argument("expected an even number, found ", x);
  return x / 2;
}

Result<int> quarter_of(int x) {
  SO_ASSIGN_OR_RETURN(int half, half_of(x));
  SO_ASSIGN_OR_RETURN(int quarter, half_of(half));
  return quarter;
}

TEST(Status, ResultPropagatesTheFirstError) {
  EXPECT_EQ(*quarter_of(8), 2);
  Result<int> bad = quarter_of(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "expected an even number, found 3");
  EXPECT_EQ(bad.status().with_context("ctx").to_string(), "invalid argument: ctx: expected an even number, found 3");
}

TEST(ThreadPool, EveryTaskRunsExactlyOnce) {
  for (int n_threads : {1, 2, 4}) {
    ThreadPool pool(n_threads);
    for (int64_t n_tasks : {0, 1, 3, 100, 1000}) {
      std::vector<std::atomic<int>> hits(n_tasks);
      for (int repeat = 0; repeat < 50; ++repeat) {
        pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
          EXPECT_LT(thread, n_threads);
          hits[task].fetch_add(1);
        });
      }
      for (auto& h : hits) EXPECT_EQ(h.load(), 50);
    }
  }
}

TEST(ThreadPool, WorkersTakePartAfterSleeping) {
  ThreadPool pool(2);
  for (int round = 0; round < 3; ++round) {
    // Long enough between jobs for the worker to fall asleep; the next job must wake it.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::atomic<int> on_worker{0};
    pool.parallel_for(200, [&](int64_t, int thread) {
      if (thread == 1) on_worker.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
    EXPECT_GT(on_worker.load(), 0) << "round " << round;
  }
}

}  // namespace
}  // namespace so
