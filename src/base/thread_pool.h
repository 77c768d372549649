// A pool of worker threads for data-parallel kernels. The caller takes part in every job.
//
// note: workers spin for about a millisecond after each job before sleeping, because a
// decode step issues hundreds of short jobs and a futex wake-up per job would cost more
// than the jobs themselves. A job ends when its tasks are done, not when every worker has
// looked at it, so a worker the OS has descheduled never holds up the caller.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

namespace so {

class ThreadPool {
 public:
  // n_threads counts the calling thread: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(task, thread) for every task in [0, n_tasks), thread in [0, n_threads()).
  // Tasks are claimed dynamically; returns when all have finished. One caller at a time.
  template <typename Fn>
  void parallel_for(int64_t n_tasks, Fn&& fn) {
    using FnType = std::remove_reference_t<Fn>;
    auto call = [](void* context, int64_t task, int thread) { (*static_cast<FnType*>(context))(task, thread); };
    run(n_tasks, call, const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using TaskFn = void (*)(void* context, int64_t task, int thread);
  void run(int64_t n_tasks, TaskFn call, void* context);
  void worker_loop(int thread);
  // Claims and runs tasks of the current job until none are left.
  void run_tasks(int thread);

  std::vector<std::thread> workers_;
  // The current job. Fields are written before the claim word announces the job, and a
  // task claimed from the word keeps its job alive (unfinished) while the fields are read.
  TaskFn job_call_ = nullptr;
  void* job_context_ = nullptr;
  // note: (n_tasks << 32 | next_task) in one word: a claim compares both at once, so it can
  // only succeed while the job it read still has unclaimed tasks.
  alignas(64) std::atomic<uint64_t> claim_word_{0};
  alignas(64) std::atomic<int64_t> tasks_done_{0};
  alignas(64) std::atomic<uint32_t> wake_generation_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
};

struct CopyJob {
  void* destination;
  const void* source;
  size_t bytes;
};
// The copies, cut into pieces of a few MiB over the pool's threads: loading tens of GB is first touches of fresh
// pages and memory bandwidth, and both scale with threads.
void parallel_copy(ThreadPool& pool, std::span<const CopyJob> copies);

}  // namespace so
