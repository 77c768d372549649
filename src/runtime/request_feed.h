// Where the scheduler takes requests from and hands tokens and results to. A fixed list
// (Engine::generate) and a server's queue of arriving requests (runtime/request_queue.h)
// both feed the same loop (Engine::serve).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/request.h"
#include "runtime/stats.h"

namespace so {

struct FedRequest {
  uint64_t handle = 0;                         // the feed's name for it in the calls below
  const GenerationRequest* request = nullptr;  // valid until on_finish(handle)
};

class RequestFeed {
 public:
  virtual ~RequestFeed() = default;
  // Appends up to `max` waiting requests to `out`. With `wait` (nothing is generating),
  // blocks until one arrives or the feed closes. Returns false once the feed is closed and
  // nothing was appended: the scheduler ends when its running rows are done.
  virtual bool take(size_t max, bool wait, std::vector<FedRequest>& out) = 0;
  virtual void on_token(uint64_t handle, int32_t token) = 0;
  // Once per request, its last call.
  virtual void on_finish(uint64_t handle, GenerationResult result) = 0;
  // Asked once per pass for every running request; a cancelled one finishes as kCancelled
  // before the next pass is built.
  virtual bool cancelled(uint64_t /*handle*/) { return false; }
  // After each pass, on the scheduler's thread.
  virtual void on_pass(const EngineStats& /*stats*/, size_t /*running*/) {}
};

}  // namespace so
