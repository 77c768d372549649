#include "runtime/request_queue.h"

#include "base/timer.h"

namespace so {

bool RequestTicket::wait(std::vector<int32_t>& tokens, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return finished_ || read_ < tokens_.size(); });
  tokens.insert(tokens.end(), tokens_.begin() + std::ptrdiff_t(read_), tokens_.end());
  read_ = tokens_.size();
  return finished_;
}

GenerationResult RequestTicket::result() const {
  std::lock_guard lock(mutex_);
  return result_;
}

void RequestTicket::add_token(int32_t token) {
  {
    std::lock_guard lock(mutex_);
    tokens_.push_back(token);
  }
  changed_.notify_all();
}

void RequestTicket::finish(GenerationResult result) {
  {
    std::lock_guard lock(mutex_);
    result_ = std::move(result);
    finished_ = true;
  }
  changed_.notify_all();
}

RequestQueue::RequestQueue(size_t max_waiting) : max_waiting_(max_waiting) {}

Result<std::shared_ptr<RequestTicket>> RequestQueue::submit(GenerationRequest request) {
  auto ticket = std::make_shared<RequestTicket>(std::move(request));
  {
    std::lock_guard lock(mutex_);
    if (closed_) return unavailable("the server is shutting down and takes no new requests");
    if (waiting_.size() >= max_waiting_) {
      return resource_exhausted(waiting_.size(), " requests are already waiting (the limit is ", max_waiting_,
                                "); retry later");
    }
    waiting_.push_back(ticket);
    metrics_.submitted += 1;
  }
  arrived_.notify_one();
  return ticket;
}

void RequestQueue::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  arrived_.notify_all();
}

bool RequestQueue::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

QueueMetrics RequestQueue::metrics() const {
  std::lock_guard lock(mutex_);
  QueueMetrics metrics = metrics_;
  metrics.waiting = waiting_.size();
  metrics.running = running_.size();
  metrics.generated_tokens = generated_tokens_.load(std::memory_order_relaxed);
  return metrics;
}

bool RequestQueue::take(size_t max, bool wait, std::vector<FedRequest>& out) {
  std::vector<std::shared_ptr<RequestTicket>> dropped;  // cancelled while waiting
  bool open = true;
  {
    std::unique_lock lock(mutex_);
    if (wait) arrived_.wait(lock, [&] { return closed_ || !waiting_.empty(); });
    while (max > 0 && !waiting_.empty()) {
      std::shared_ptr<RequestTicket> ticket = std::move(waiting_.front());
      waiting_.pop_front();
      if (ticket->cancelled()) {
        dropped.push_back(std::move(ticket));
        continue;
      }
      const uint64_t handle = reinterpret_cast<uint64_t>(ticket.get());
      out.push_back({handle, &ticket->request()});
      running_.emplace(handle, std::move(ticket));
      --max;
    }
    open = !(closed_ && waiting_.empty() && out.empty());
  }
  for (auto& ticket : dropped) {
    GenerationResult result;
    result.finish = FinishReason::kCancelled;
    {
      std::lock_guard lock(mutex_);
      metrics_.finished["cancelled"] += 1;
    }
    ticket->finish(std::move(result));
  }
  return open;
}

void RequestQueue::on_token(uint64_t handle, int32_t token) {
  generated_tokens_.fetch_add(1, std::memory_order_relaxed);
  ticket_of(handle).add_token(token);
}

void RequestQueue::on_finish(uint64_t handle, GenerationResult result) {
  std::shared_ptr<RequestTicket> ticket;
  {
    std::lock_guard lock(mutex_);
    auto found = running_.find(handle);
    if (found == running_.end()) return;
    ticket = std::move(found->second);
    running_.erase(found);
    metrics_.finished[std::string(finish_reason_name(result.finish))] += 1;
    metrics_.prompt_tokens += int64_t(ticket->request().prompt_tokens.size());
  }
  ticket->finish(std::move(result));
}

bool RequestQueue::cancelled(uint64_t handle) { return ticket_of(handle).cancelled(); }

void RequestQueue::on_pass(const EngineStats& stats, size_t) {
  const double now = now_seconds();
  const int64_t generated = generated_tokens_.load(std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  metrics_.engine = stats;
  recent_.emplace_back(now, generated);
  while (recent_.size() > 2 && now - recent_.front().first > 10.0) recent_.pop_front();
  const double span = now - recent_.front().first;
  metrics_.recent_tokens_per_second = span > 0 ? double(generated - recent_.front().second) / span : 0.0;
}

}  // namespace so
