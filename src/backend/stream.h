// Streams and events (ARCHITECTURE.md section 5): the ordering seam the offload pipeline
// is written against. A stream runs its work in order; an event marks a point in a stream
// that other streams (or the host) wait on. Copies are asynchronous: they go on a stream.
// Every piece of work records its start and end, which gives per-stage busy time, idle
// gaps and the per-pass timeline.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace so {

// kCopy moves host to device (the weights, the attention output of the host KV tier);
// kCopyToHost device to host (q, k, v of the host KV tier), which a GPU's PCIe link carries
// beside the other direction. kDisk: reads of the model file into pinned host memory, a host
// thread on every backend.
enum class StreamRole { kCompute, kCopy, kCopyToHost, kDraft, kDisk };
std::string_view stream_role_name(StreamRole role);

class Event {
 public:
  virtual ~Event() = default;
  virtual bool done() const = 0;
  virtual void wait_host() const = 0;  // blocks the calling thread until done
};

// One finished piece of work on a stream, for metrics and traces.
struct StreamSpan {
  std::string label;
  double start_seconds = 0;  // now_seconds() clock
  double end_seconds = 0;
  int64_t bytes = 0;  // copies: bytes moved
};

class Stream {
 public:
  virtual ~Stream() = default;
  virtual StreamRole role() const = 0;

  // Host-visible memory to memory, after everything enqueued before.
  virtual void copy(void* destination, const void* source, size_t bytes, std::string label) = 0;
  // Runs work (a kernel launch on a device; a function on the CPU backend) in order.
  virtual void launch(std::function<void()> work, std::string label) = 0;
  // An event that completes when everything enqueued so far has finished.
  virtual std::shared_ptr<Event> record() = 0;
  // Work enqueued after this call starts only once `event` is done.
  virtual void wait(std::shared_ptr<Event> event) = 0;
  // Blocks the host until everything enqueued has finished.
  virtual void synchronize() = 0;

  // Spans finished since the last call, in order (the stream keeps no history beyond).
  virtual std::vector<StreamSpan> take_spans() = 0;
};

}  // namespace so
