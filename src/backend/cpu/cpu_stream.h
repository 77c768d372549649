// CPU streams: each is a worker thread with an in-order queue, so the scheduler is the same
// code on the CPU and CUDA backends (ARCHITECTURE.md section 5). A copy stream is the copy
// engine: with link_bytes_per_second > 0 it throttles every copy to that bandwidth (a copy
// of n bytes takes at least n / bandwidth), so a machine without a GPU can study and test
// PCIe-like behaviour.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "backend/stream.h"

namespace so {

class CpuEvent final : public Event {
 public:
  bool done() const override;
  void wait_host() const override;
  void signal();

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool done_ = false;
};

class CpuStream final : public Stream {
 public:
  CpuStream(StreamRole role, double link_bytes_per_second = 0.0);
  ~CpuStream() override;  // finishes the queued work first

  StreamRole role() const override { return role_; }
  void copy(void* destination, const void* source, size_t bytes, std::string label) override;
  void launch(std::function<void()> work, std::string label) override;
  std::shared_ptr<Event> record() override;
  void wait(std::shared_ptr<Event> event) override;
  void synchronize() override;
  std::vector<StreamSpan> take_spans() override;

 private:
  struct Item {
    std::function<void()> work;   // empty for a pure wait or record
    std::shared_ptr<Event> wait_for;
    std::shared_ptr<CpuEvent> signal;
    std::string label;
    int64_t bytes = 0;
  };
  void enqueue(Item item);
  void run();

  StreamRole role_;
  double link_bytes_per_second_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Item> queue_;
  int64_t in_flight_ = 0;  // items queued or running
  bool stop_ = false;
  std::vector<StreamSpan> spans_;
  std::thread worker_;
};

}  // namespace so
