#include "backend/cpu/cpu_stream.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "base/timer.h"

namespace so {

std::string_view stream_role_name(StreamRole role) {
  switch (role) {
    case StreamRole::kCompute: return "compute";
    case StreamRole::kCopy: return "copy";
    case StreamRole::kCopyToHost: return "copy to host";
    case StreamRole::kDraft: return "draft";
    case StreamRole::kDisk: return "disk";
  }
  return "?";
}

bool CpuEvent::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

void CpuEvent::wait_host() const {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return done_; });
}

void CpuEvent::signal() {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  changed_.notify_all();
}

double SimulatedLink::reserve(int64_t bytes, double at) {
  std::lock_guard lock(mutex_);
  free_at_ = std::max(free_at_, at) + double(bytes) / bytes_per_second_;
  return free_at_;
}

CpuStream::CpuStream(StreamRole role, std::shared_ptr<SimulatedLink> link)
    : role_(role), link_(std::move(link)), worker_([this] { run(); }) {}

CpuStream::~CpuStream() {
  synchronize();
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void CpuStream::enqueue(Item item) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(item));
    ++in_flight_;
  }
  changed_.notify_all();
}

void CpuStream::copy(void* destination, const void* source, size_t bytes, std::string label) {
  auto work = [destination, source, bytes, link = link_] {
    if (!link) {
      std::memcpy(destination, source, bytes);
      return;
    }
    // The simulated link: each piece ends no sooner than its turn on the link allows.
    // note: pieces, so that copies on other streams in the same direction take turns with
    // this one (as a GPU's copy engines share PCIe) instead of waiting for all of it.
    // Each piece may start where the last one ended (not when this thread woke up after it),
    // so sleeping's overshoot does not slow the link.
    constexpr size_t kPiece = size_t(256) << 10;
    double at = now_seconds();
    for (size_t done = 0; done < bytes; done += kPiece) {
      const size_t piece = std::min(kPiece, bytes - done);
      const double end = link->reserve(static_cast<int64_t>(piece), at);
      std::memcpy(static_cast<uint8_t*>(destination) + done, static_cast<const uint8_t*>(source) + done, piece);
      sleep_until_seconds(end);
      at = end;
    }
  };
  enqueue({std::move(work), nullptr, nullptr, std::move(label), static_cast<int64_t>(bytes)});
}

void CpuStream::launch(std::function<void()> work, std::string label) {
  enqueue({std::move(work), nullptr, nullptr, std::move(label), 0});
}

std::shared_ptr<Event> CpuStream::record() {
  auto event = std::make_shared<CpuEvent>();
  enqueue({{}, nullptr, event, {}, 0});
  return event;
}

void CpuStream::wait(std::shared_ptr<Event> event) { enqueue({{}, std::move(event), nullptr, {}, 0}); }

void CpuStream::synchronize() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return in_flight_ == 0; });
}

std::vector<StreamSpan> CpuStream::take_spans() {
  std::lock_guard lock(mutex_);
  std::vector<StreamSpan> spans;
  spans.swap(spans_);
  return spans;
}

void CpuStream::run() {
  while (true) {
    Item item;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop with nothing left
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    if (item.wait_for) item.wait_for->wait_host();
    if (item.work) {
      StreamSpan span{std::move(item.label), now_seconds(), 0, item.bytes};
      item.work();
      span.end_seconds = now_seconds();
      std::lock_guard lock(mutex_);
      spans_.push_back(std::move(span));
    }
    if (item.signal) item.signal->signal();
    {
      std::lock_guard lock(mutex_);
      --in_flight_;
    }
    changed_.notify_all();
  }
}

}  // namespace so
