#include "base/thread_pool.h"

#include <algorithm>
#include <cstring>

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
constexpr int64_t kMaxTasks = int64_t(1) << 31;

uint64_t pack(uint64_t n_tasks, uint64_t next_task) { return n_tasks << 32 | next_task; }
uint32_t tasks_of(uint64_t word) { return static_cast<uint32_t>(word >> 32); }
uint32_t next_of(uint64_t word) { return static_cast<uint32_t>(word); }
bool has_unclaimed(uint64_t word) { return next_of(word) < tasks_of(word); }
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  SO_CHECK_GE(n_threads, 1);
  workers_.reserve(n_threads - 1);
  for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  wake_generation_.fetch_add(1, std::memory_order_release);
  wake_generation_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_tasks(int thread) {
  uint64_t word = claim_word_.load(std::memory_order_acquire);
  while (has_unclaimed(word)) {
    if (!claim_word_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      continue;  // word was reloaded
    }
    job_call_(job_context_, next_of(word), thread);
    tasks_done_.fetch_add(1, std::memory_order_release);
    word = claim_word_.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(int64_t n_tasks, TaskFn call, void* context) {
  if (n_tasks <= 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t task = 0; task < n_tasks; ++task) call(context, task, 0);
    return;
  }
  SO_CHECK_LT(n_tasks, kMaxTasks, "tasks per parallel_for");
  job_call_ = call;
  job_context_ = context;
  tasks_done_.store(0, std::memory_order_relaxed);
  // note: seq_cst here and in the worker's sleep handshake (store the job, then look for
  // sleepers / announce sleep, then look for a job): weaker orders let both sides miss each
  // other, leaving a worker asleep through a job.
  claim_word_.store(pack(uint64_t(n_tasks), 0), std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst) > 0) {
    wake_generation_.fetch_add(1, std::memory_order_release);
    wake_generation_.notify_all();
  }
  run_tasks(0);
  // note: yield after a short spin so an oversubscribed machine still runs the worker
  // that holds the last task.
  for (int i = 0; tasks_done_.load(std::memory_order_acquire) != n_tasks; ++i) {
    SO_CPU_RELAX();
    if ((i & 1023) == 1023) std::this_thread::yield();
  }
}

void ThreadPool::worker_loop(int thread) {
  while (!stop_.load(std::memory_order_acquire)) {
    run_tasks(thread);
    // Spin for the next job, then sleep until the caller wakes the pool.
    const double spin_until = now_seconds() + kSpinSeconds;
    for (int i = 0; !has_unclaimed(claim_word_.load(std::memory_order_acquire)); ++i) {
      if (stop_.load(std::memory_order_acquire)) return;
      SO_CPU_RELAX();
      if ((i & 255) != 255) continue;
      if (now_seconds() < spin_until) {
        if ((i & 4095) == 4095) std::this_thread::yield();
        continue;
      }
      const uint32_t generation = wake_generation_.load(std::memory_order_acquire);
      sleeping_.fetch_add(1, std::memory_order_seq_cst);
      // Re-check after announcing the sleep: a job published before the caller could see
      // sleeping_ > 0 would otherwise be missed until the next one.
      if (!has_unclaimed(claim_word_.load(std::memory_order_seq_cst)) && !stop_.load(std::memory_order_acquire)) {
        wake_generation_.wait(generation, std::memory_order_acquire);
      }
      sleeping_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void parallel_copy(ThreadPool& pool, std::span<const CopyJob> copies) {
  constexpr size_t kPiece = 8 << 20;
  std::vector<CopyJob> pieces;
  for (const CopyJob& copy : copies) {
    for (size_t at = 0; at < copy.bytes; at += kPiece) {
      pieces.push_back({static_cast<uint8_t*>(copy.destination) + at, static_cast<const uint8_t*>(copy.source) + at,
                        std::min(kPiece, copy.bytes - at)});
    }
  }
  pool.parallel_for(int64_t(pieces.size()), [&pieces](int64_t i, int) {
    std::memcpy(pieces[size_t(i)].destination, pieces[size_t(i)].source, pieces[size_t(i)].bytes);
  });
}

}  // namespace so
