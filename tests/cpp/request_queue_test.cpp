// The server's request queue (runtime/request_queue.h), stop strings and the OpenAI body
// parser, without a model.
#include "runtime/request_queue.h"

#include <gtest/gtest.h>

#include <thread>

#include "runtime/openai_api.h"

namespace so {
namespace {

GenerationRequest request_of(int n_tokens) {
  GenerationRequest request;
  request.prompt_tokens.assign(size_t(n_tokens), 1);
  return request;
}

TEST(RequestQueue, TakeBlocksUntilASubmissionAndTokensReachTheTicket) {
  RequestQueue queue(8);
  std::vector<FedRequest> taken;
  std::thread scheduler([&] { EXPECT_TRUE(queue.take(4, /*wait=*/true, taken)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto ticket = queue.submit(request_of(3));
  ASSERT_TRUE(ticket.ok());
  scheduler.join();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].request->prompt_tokens.size(), 3u);
  queue.on_token(taken[0].handle, 7);
  queue.on_token(taken[0].handle, 9);
  std::vector<int32_t> tokens;
  EXPECT_FALSE((*ticket)->wait(tokens, std::chrono::milliseconds(1)));
  EXPECT_EQ(tokens, (std::vector<int32_t>{7, 9}));
  GenerationResult result;
  result.tokens = {7, 9};
  result.finish = FinishReason::kStop;
  queue.on_finish(taken[0].handle, result);
  EXPECT_TRUE((*ticket)->wait(tokens, std::chrono::milliseconds(1)));
  EXPECT_EQ((*ticket)->result().finish, FinishReason::kStop);
  const QueueMetrics metrics = queue.metrics();
  EXPECT_EQ(metrics.submitted, 1);
  EXPECT_EQ(metrics.running, 0u);
  EXPECT_EQ(metrics.generated_tokens, 2);
  EXPECT_EQ(metrics.finished.at("stop"), 1);
  EXPECT_EQ(metrics.prompt_tokens, 3);
}

TEST(RequestQueue, FullAndClosedQueuesRefuseAndCloseEndsTheFeed) {
  RequestQueue queue(2);
  ASSERT_TRUE(queue.submit(request_of(1)).ok());
  ASSERT_TRUE(queue.submit(request_of(1)).ok());
  auto full = queue.submit(request_of(1));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), ErrorCode::kResourceExhausted);
  queue.close();
  auto closed = queue.submit(request_of(1));
  ASSERT_FALSE(closed.ok());
  EXPECT_EQ(closed.status().code(), ErrorCode::kUnavailable);
  // What was submitted before closing is still handed out; then the feed ends.
  std::vector<FedRequest> taken;
  EXPECT_TRUE(queue.take(1, true, taken));
  EXPECT_TRUE(queue.take(8, true, taken));
  EXPECT_EQ(taken.size(), 2u);
  std::vector<FedRequest> more;
  EXPECT_FALSE(queue.take(8, true, more));
  EXPECT_TRUE(more.empty());
}

TEST(RequestQueue, CancelledWhileWaitingFinishesWithoutARow) {
  RequestQueue queue(4);
  auto dropped = queue.submit(request_of(1));
  auto kept = queue.submit(request_of(2));
  (*dropped)->cancel();
  std::vector<FedRequest> taken;
  EXPECT_TRUE(queue.take(4, false, taken));
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].request->prompt_tokens.size(), 2u);
  std::vector<int32_t> tokens;
  EXPECT_TRUE((*dropped)->wait(tokens, std::chrono::milliseconds(1)));
  EXPECT_EQ((*dropped)->result().finish, FinishReason::kCancelled);
  EXPECT_FALSE(queue.cancelled(taken[0].handle));
  (*kept)->cancel();
  EXPECT_TRUE(queue.cancelled(taken[0].handle));
}

TEST(RequestQueue, ManySubmittersOneScheduler) {
  RequestQueue queue(100000);
  constexpr int kThreads = 8, kEach = 200;
  std::vector<std::thread> submitters;
  std::atomic<int> finished{0};
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto ticket = queue.submit(request_of(1));
        ASSERT_TRUE(ticket.ok());
        std::vector<int32_t> tokens;
        while (!(*ticket)->wait(tokens, std::chrono::milliseconds(100))) {
        }
        EXPECT_EQ(tokens, (std::vector<int32_t>{5}));
        finished.fetch_add(1);
      }
    });
  }
  std::thread scheduler([&] {
    std::vector<FedRequest> taken;
    while (queue.take(16, true, taken)) {
      for (const FedRequest& fed : taken) {
        queue.on_token(fed.handle, 5);
        queue.on_finish(fed.handle, GenerationResult{});
      }
      taken.clear();
    }
  });
  for (auto& thread : submitters) thread.join();
  queue.close();
  scheduler.join();
  EXPECT_EQ(finished.load(), kThreads * kEach);
  EXPECT_EQ(queue.metrics().generated_tokens, kThreads * kEach);
}

TEST(StopStrings, FindsTheFirstMatchEndingInTheNewText) {
  const std::vector<std::string> stops = {"\n\n", "END"};
  EXPECT_EQ(find_stop_string("abc", 0, stops), std::string::npos);
  EXPECT_EQ(find_stop_string("ab\n\ncd", 3, stops), 2u);   // spans the old and the new text
  EXPECT_EQ(find_stop_string("xENDy\n\n", 0, stops), 1u);  // the earliest of several
  // A match that ended in text searched before is not reported again.
  EXPECT_EQ(find_stop_string("END and more", 10, stops), std::string::npos);
}

TEST(ApiBody, ReadsFieldsAndRefusesWhatItCannotHonour) {
  ApiRequest request;
  const nlohmann::json chat = {{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "hi"}}}}}}},
                               {"max_tokens", 5},
                               {"stop", "x"},
                               {"stream", true},
                               {"stream_options", {{"include_usage", true}}},
                               {"temperature", 0}};
  ASSERT_TRUE(parse_api_body(chat, true, {"", true}, request).ok());
  EXPECT_EQ(request.messages.at(0).content, "hi");
  EXPECT_EQ(request.max_tokens, 5);
  EXPECT_EQ(request.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(request.stream && request.include_usage);
  // A batch job has no stream.
  Status batch = parse_api_body(chat, true, {"line 3: ", false}, request);
  EXPECT_NE(batch.message().find("line 3: "), std::string::npos) << batch.message();
  const nlohmann::json ids = {{"prompt", {1, 2, 3}}};
  ASSERT_TRUE(parse_api_body(ids, false, {}, request).ok());
  EXPECT_EQ(request.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  for (const char* bad : {R"({"prompt": "a", "n": 2})", R"({"prompt": "a", "logprobs": true})",
                          R"({"prompt": "a", "stop": ["a","b","c","d","e"]})", R"({"prompt": ["a", "b"]})",
                          R"({"prompt": "a", "stop": [""]})", R"({"prompt": "a", "stream": "yes"})"}) {
    EXPECT_FALSE(parse_api_body(nlohmann::json::parse(bad), false, {"", true}, request).ok()) << bad;
  }
}

}  // namespace
}  // namespace so
