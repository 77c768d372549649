// CUDA streams and events behind the Stream/Event seam. Copies are timed with event pairs
// so the copy engine's busy spans reach the pass log on the same clock as host spans.
#pragma once

#include <deque>
#include <memory>

#include <cuda_runtime_api.h>

#include "backend/stream.h"

namespace so {

class CudaEvent final : public Event {
 public:
  explicit CudaEvent(cudaStream_t stream);  // recorded on `stream` now
  ~CudaEvent() override;
  bool done() const override;
  void wait_host() const override;
  cudaEvent_t event() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

class CudaStream final : public Stream {
 public:
  // Lower priority for kDraft, so verification kernels go first when both are ready.
  explicit CudaStream(StreamRole role);
  ~CudaStream() override;  // finishes the queued work first

  StreamRole role() const override { return role_; }
  cudaStream_t stream() const { return stream_; }
  void copy(void* destination, const void* source, size_t bytes, std::string label) override;
  void launch(std::function<void()> work, std::string label) override;
  std::shared_ptr<Event> record() override;
  void wait(std::shared_ptr<Event> event) override;
  void synchronize() override;
  std::vector<StreamSpan> take_spans() override;

 private:
  struct Timed {
    std::string label;
    int64_t bytes;
    cudaEvent_t start;
    cudaEvent_t end;
  };
  double seconds_at(cudaEvent_t event) const;

  StreamRole role_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t anchor_ = nullptr;  // recorded at creation, at host time anchor_seconds_
  double anchor_seconds_ = 0.0;
  std::deque<Timed> timed_;
};

// Waits `stream` on `event` (a CudaEvent, or a host-side event, which is waited for on the host).
void stream_wait(cudaStream_t stream, const Event& event);

}  // namespace so
