// Engine::generate and Engine::serve: the scheduler (runtime/scheduler.h) over a feed of
// requests, a fixed list or one that grows as requests arrive.
#include <utility>

#include "runtime/engine.h"
#include "runtime/scheduler.h"

namespace so {
namespace {

// Engine::generate's feed: a fixed list, results kept in request order.
class ListFeed final : public RequestFeed {
 public:
  ListFeed(std::span<const GenerationRequest> requests, const TokenCallback& on_token, const FinishCallback& on_finish)
      : requests_(requests), results_(requests.size()), on_token_(on_token), on_finish_(on_finish) {}
  bool take(size_t max, bool, std::vector<FedRequest>& out) override {
    if (next_ == requests_.size()) return false;
    for (; max > 0 && next_ < requests_.size(); --max, ++next_) out.push_back({next_, &requests_[next_]});
    return true;
  }
  void on_token(uint64_t handle, int32_t token) override {
    if (on_token_) on_token_(size_t(handle), token);
  }
  void on_finish(uint64_t handle, GenerationResult result) override {
    results_[handle] = std::move(result);
    if (on_finish_) on_finish_(size_t(handle), results_[handle]);
  }
  std::vector<GenerationResult> take_results() { return std::move(results_); }

 private:
  std::span<const GenerationRequest> requests_;
  std::vector<GenerationResult> results_;
  size_t next_ = 0;
  const TokenCallback& on_token_;
  const FinishCallback& on_finish_;
};

}  // namespace

std::vector<GenerationResult> Engine::generate(std::span<const GenerationRequest> requests,
                                               const TokenCallback& on_token, const FinishCallback& on_finish) {
  ListFeed feed(requests, on_token, on_finish);
  serve(feed);
  return feed.take_results();
}

void Engine::serve(RequestFeed& feed) {
  Scheduler scheduler(*this, feed);
  scheduler.run();
}

}  // namespace so
