#include "base/compute_gate.h"

namespace so {
namespace {
thread_local bool low_priority_thread = false;
}  // namespace

ComputeGate::LowPriorityScope::LowPriorityScope() : previous_(low_priority_thread) { low_priority_thread = true; }
ComputeGate::LowPriorityScope::~LowPriorityScope() { low_priority_thread = previous_; }

void ComputeGate::enter() {
  const std::thread::id self = std::this_thread::get_id();
  std::unique_lock lock(mutex_);
  if (depth_ > 0 && holder_ == self) {
    ++depth_;
    return;
  }
  if (low_priority_thread) {
    released_.wait(lock, [&] { return depth_ == 0 && normal_waiting_ == 0; });
  } else {
    ++normal_waiting_;
    released_.wait(lock, [&] { return depth_ == 0; });
    --normal_waiting_;
  }
  holder_ = self;
  depth_ = 1;
}

void ComputeGate::exit() {
  {
    std::lock_guard lock(mutex_);
    if (--depth_ > 0) return;
    holder_ = std::thread::id();
  }
  released_.notify_all();
}

}  // namespace so
