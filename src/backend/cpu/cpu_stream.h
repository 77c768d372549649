// CPU streams: each is a worker thread with an in-order queue, so the scheduler is the same
// code on the CPU and CUDA backends (ARCHITECTURE.md section 5). A copy stream is a copy
// engine: given a simulated link it throttles every copy to the link's bandwidth, shared
// with the other streams on the same link (one direction of PCIe), so a machine without a
// GPU can study and test PCIe-like behaviour.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
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

// One direction of a simulated link: copies take turns at its bandwidth, a piece at a time.
// A piece of n bytes that starts when the link is free ends n / bandwidth later; one that
// starts while another piece holds the link ends that much after the link frees up.
class SimulatedLink {
 public:
  explicit SimulatedLink(double bytes_per_second) : bytes_per_second_(bytes_per_second) {}
  // Reserves the link for `bytes` from `at` (or from when it frees up); returns when they are through.
  double reserve(int64_t bytes, double at);

 private:
  std::mutex mutex_;
  double bytes_per_second_;
  double free_at_ = 0;
};

class CpuStream final : public Stream {
 public:
  // link: throttles this stream's copies (null: memcpy speed).
  explicit CpuStream(StreamRole role, std::shared_ptr<SimulatedLink> link = nullptr);
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
  std::shared_ptr<SimulatedLink> link_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Item> queue_;
  int64_t in_flight_ = 0;  // items queued or running
  bool stop_ = false;
  std::vector<StreamSpan> spans_;
  std::thread worker_;
};

}  // namespace so
