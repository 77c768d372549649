#include "base/thread_pool.h"

#include "base/check.h"
#include "base/timer.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SO_CPU_RELAX() _mm_pause()
#else
#define SO_CPU_RELAX() ((void)0)
#endif

namespace so {

namespace {
constexpr double kSpinSeconds = 1e-3;
}

ThreadPool::ThreadPool(int n_threads) {
  SO_CHECK_GE(n_threads, 1);
  workers_.reserve(n_threads - 1);
  for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_tasks(int thread) {
  for (int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed); task < job_tasks_;
       task = next_task_.fetch_add(1, std::memory_order_relaxed)) {
    job_call_(job_context_, task, thread);
  }
}

void ThreadPool::run(int64_t n_tasks, TaskFn call, void* context) {
  if (n_tasks <= 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t task = 0; task < n_tasks; ++task) call(context, task, 0);
    return;
  }
  job_call_ = call;
  job_context_ = context;
  job_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  workers_done_.store(0, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  run_tasks(0);
  // note: yield after a short spin so an oversubscribed machine (more runnable threads
  // than cores) still schedules the worker we are waiting for.
  const int n_workers = static_cast<int>(workers_.size());
  for (int i = 0; workers_done_.load(std::memory_order_acquire) != n_workers; ++i) {
    SO_CPU_RELAX();
    if ((i & 1023) == 1023) std::this_thread::yield();
  }
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  while (true) {
    // Spin briefly for the next job, then sleep on the generation counter.
    uint64_t current = generation_.load(std::memory_order_acquire);
    if (current == seen) {
      const double spin_until = now_seconds() + kSpinSeconds;
      for (int i = 0; (current = generation_.load(std::memory_order_acquire)) == seen; ++i) {
        SO_CPU_RELAX();
        if ((i & 255) == 255) {
          if (now_seconds() > spin_until) {
            generation_.wait(seen, std::memory_order_acquire);
          } else if ((i & 4095) == 4095) {
            std::this_thread::yield();
          }
        }
      }
    }
    seen = current;
    if (stop_.load(std::memory_order_relaxed)) return;
    run_tasks(thread);
    workers_done_.fetch_add(1, std::memory_order_release);
  }
}

}  // namespace so
