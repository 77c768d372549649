// A thread-safe request feed for a server: request threads submit generations and read
// their tokens as they come; the scheduler's thread (Engine::serve) takes them between
// passes. Closing it lets the running requests finish (graceful shutdown).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_set>

#include "runtime/request_feed.h"

namespace so {

// One submitted request, shared by its submitter and the queue.
class RequestTicket {
 public:
  explicit RequestTicket(GenerationRequest request) : request_(std::move(request)) {}
  const GenerationRequest& request() const { return request_; }

  // Waits until tokens arrive past those already read, the request finishes, or the
  // timeout passes; appends the new tokens. True once it finished and all were read.
  bool wait(std::vector<int32_t>& tokens, std::chrono::milliseconds timeout);
  // The scheduler drops it before its next pass (finish kCancelled).
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  // After wait() returned true.
  GenerationResult result() const;

 private:
  friend class RequestQueue;
  void add_token(int32_t token);
  void finish(GenerationResult result);

  GenerationRequest request_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int32_t> tokens_;
  size_t read_ = 0;
  bool finished_ = false;
  GenerationResult result_;
  std::atomic<bool> cancelled_{false};
};

// Counters and gauges for /metrics.
struct QueueMetrics {
  size_t waiting = 0;  // submitted, not yet taken by the scheduler
  size_t running = 0;  // taken by the scheduler, not finished
  int64_t submitted = 0;
  std::map<std::string, int64_t> finished;  // by finish reason
  int64_t prompt_tokens = 0;                // of finished requests
  int64_t generated_tokens = 0;             // every token handed out
  double recent_tokens_per_second = 0;      // over the last ~10 s of passes
  EngineStats engine;                       // as of the last pass
};

class RequestQueue final : public RequestFeed {
 public:
  // max_waiting: submissions beyond this many waiting requests are refused (back-pressure).
  explicit RequestQueue(size_t max_waiting);

  // An error when the queue is closed (shutting down) or full.
  Result<std::shared_ptr<RequestTicket>> submit(GenerationRequest request);
  // No more submissions; the scheduler ends once what was submitted has finished.
  void close();
  bool closed() const;
  QueueMetrics metrics() const;

  // RequestFeed, on the scheduler's thread.
  bool take(size_t max, bool wait, std::vector<FedRequest>& out) override;
  void on_token(uint64_t handle, int32_t token) override;
  void on_finish(uint64_t handle, GenerationResult result) override;
  bool cancelled(uint64_t handle) override;
  void on_pass(const EngineStats& stats, size_t running) override;

 private:
  static RequestTicket& ticket_of(uint64_t handle) { return *reinterpret_cast<RequestTicket*>(handle); }

  const size_t max_waiting_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<std::shared_ptr<RequestTicket>> waiting_;
  // Taken by the scheduler and not finished; the handle is the ticket's address.
  std::map<uint64_t, std::shared_ptr<RequestTicket>> running_;
  bool closed_ = false;
  QueueMetrics metrics_;
  std::atomic<int64_t> generated_tokens_{0};
  std::deque<std::pair<double, int64_t>> recent_;  // (time, generated tokens) per pass
};

}  // namespace so
