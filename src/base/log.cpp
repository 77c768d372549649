#include "base/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "base/check.h"

namespace so {
namespace {

LogLevel level_from_environment() {
  const char* value = std::getenv("SPECOFFLOAD_LOG");
  if (value == nullptr) return LogLevel::kWarn;
  if (std::strcmp(value, "error") == 0) return LogLevel::kError;
  if (std::strcmp(value, "info") == 0) return LogLevel::kInfo;
  if (std::strcmp(value, "debug") == 0) return LogLevel::kDebug;
  return LogLevel::kWarn;
}

std::atomic<int>& level_storage() {
  static std::atomic<int> level{static_cast<int>(level_from_environment())};
  return level;
}

// note: set at static initialization, so lines carry seconds since the process began.
const auto kStart = std::chrono::steady_clock::now();

std::mutex& log_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

LogLevel log_level() { return static_cast<LogLevel>(level_storage().load(std::memory_order_relaxed)); }
void set_log_level(LogLevel level) { level_storage().store(static_cast<int>(level)); }

void log_write(LogLevel level, const std::string& message) {
  static const char* kNames[] = {"error", "warn", "info", "debug"};
  std::lock_guard lock(log_mutex());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - kStart).count();
  std::fprintf(stderr, "[specoffload %s %8.2f s] %s\n", kNames[static_cast<int>(level)], seconds, message.c_str());
}

namespace detail {
void check_failed(const char* file, int line, const char* condition, const std::string& message) {
  std::fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, condition, message.empty() ? "" : ": ",
               message.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

}  // namespace so
