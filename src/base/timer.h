// Monotonic wall-clock timing.
#pragma once

#include <chrono>
#include <thread>

namespace so {

inline double now_seconds() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

// Sleeps until now_seconds() reaches `deadline` (returns at once when it has).
inline void sleep_until_seconds(double deadline) {
  const double left = deadline - now_seconds();
  if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
}

class Stopwatch {
 public:
  Stopwatch() : start_(now_seconds()) {}
  double elapsed_seconds() const { return now_seconds() - start_; }
  void restart() { start_ = now_seconds(); }

 private:
  double start_;
};

}  // namespace so
