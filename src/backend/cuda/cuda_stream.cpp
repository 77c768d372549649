#include "backend/cuda/cuda_stream.h"

#include "backend/cuda/cuda_check.h"
#include "base/timer.h"

namespace so {

CudaEvent::CudaEvent(cudaStream_t stream) {
  SO_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
  SO_CUDA_CHECK(cudaEventRecord(event_, stream));
}

CudaEvent::~CudaEvent() { cudaEventDestroy(event_); }

bool CudaEvent::done() const {
  const cudaError_t status = cudaEventQuery(event_);
  if (status == cudaErrorNotReady) return false;
  SO_CUDA_CHECK(status);
  return true;
}

void CudaEvent::wait_host() const { SO_CUDA_CHECK(cudaEventSynchronize(event_)); }

void stream_wait(cudaStream_t stream, const Event& event) {
  if (const auto* cuda_event = dynamic_cast<const CudaEvent*>(&event)) {
    SO_CUDA_CHECK(cudaStreamWaitEvent(stream, cuda_event->event(), 0));
  } else {
    event.wait_host();
  }
}

CudaStream::CudaStream(StreamRole role) : role_(role) {
  int least = 0, greatest = 0;
  SO_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  SO_CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, role == StreamRole::kDraft ? least : greatest));
  SO_CUDA_CHECK(cudaEventCreate(&anchor_));
  SO_CUDA_CHECK(cudaEventRecord(anchor_, stream_));
  SO_CUDA_CHECK(cudaEventSynchronize(anchor_));
  anchor_seconds_ = now_seconds();
}

CudaStream::~CudaStream() {
  cudaStreamSynchronize(stream_);
  for (const Timed& t : timed_) {
    cudaEventDestroy(t.start);
    cudaEventDestroy(t.end);
  }
  cudaEventDestroy(anchor_);
  cudaStreamDestroy(stream_);
}

void CudaStream::copy(void* destination, const void* source, size_t bytes, std::string label) {
  Timed timed{std::move(label), int64_t(bytes), nullptr, nullptr};
  SO_CUDA_CHECK(cudaEventCreate(&timed.start));
  SO_CUDA_CHECK(cudaEventCreate(&timed.end));
  SO_CUDA_CHECK(cudaEventRecord(timed.start, stream_));
  SO_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDefault, stream_));
  SO_CUDA_CHECK(cudaEventRecord(timed.end, stream_));
  timed_.push_back(std::move(timed));
}

namespace {
void CUDART_CB run_host_work(void* data) {
  std::unique_ptr<std::function<void()>> work(static_cast<std::function<void()>*>(data));
  (*work)();
}
}  // namespace

void CudaStream::launch(std::function<void()> work, std::string /*label*/) {
  auto* heap = new std::function<void()>(std::move(work));
  SO_CUDA_CHECK(cudaLaunchHostFunc(stream_, run_host_work, heap));
}

std::shared_ptr<Event> CudaStream::record() { return std::make_shared<CudaEvent>(stream_); }

void CudaStream::wait(std::shared_ptr<Event> event) { stream_wait(stream_, *event); }

void CudaStream::synchronize() { SO_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

double CudaStream::seconds_at(cudaEvent_t event) const {
  float milliseconds = 0.0f;
  SO_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, anchor_, event));
  return anchor_seconds_ + milliseconds * 1e-3;
}

std::vector<StreamSpan> CudaStream::take_spans() {
  std::vector<StreamSpan> spans;
  while (!timed_.empty()) {
    const Timed& t = timed_.front();
    const cudaError_t status = cudaEventQuery(t.end);
    if (status == cudaErrorNotReady) break;
    SO_CUDA_CHECK(status);
    spans.push_back({t.label, seconds_at(t.start), seconds_at(t.end), t.bytes});
    cudaEventDestroy(t.start);
    cudaEventDestroy(t.end);
    timed_.pop_front();
  }
  return spans;
}

}  // namespace so
