// Turns at shared compute for several host threads: one holder at a time, and a waiting
// thread of normal priority goes before waiting low-priority ones. The CPU backend takes it
// around every op, so the draft's thread runs its ops while the target's thread waits for
// a streamed layer, and the target goes first the moment its layer arrives.
//
// note: re-entrant per thread (an op may call another), and a thread's priority is a
// thread-local setting (LowPriorityScope), so model code passes nothing around.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace so {

class ComputeGate {
 public:
  void enter();
  void exit();

  class Scope {
   public:
    explicit Scope(ComputeGate& gate) : gate_(gate) { gate_.enter(); }
    ~Scope() { gate_.exit(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    ComputeGate& gate_;
  };

  // Marks the calling thread low priority while it lives (the draft's thread).
  class LowPriorityScope {
   public:
    LowPriorityScope();
    ~LowPriorityScope();
    LowPriorityScope(const LowPriorityScope&) = delete;
    LowPriorityScope& operator=(const LowPriorityScope&) = delete;

   private:
    bool previous_;
  };

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  std::thread::id holder_;
  int depth_ = 0;           // the holder's nesting
  int normal_waiting_ = 0;  // normal-priority threads waiting to enter
};

}  // namespace so
