#include "runtime/stats.h"

#include <cstdio>

#include "base/strings.h"

namespace so {

std::string EngineStats::summary_line() const {
  char line[512];
  std::snprintf(line, sizeof line,
                "prefill %lld tok %.2f s (%.1f tok/s) | decode %lld tok %.2f s (%.1f tok/s) | read %s (%.2f GB/s) | "
                "%lld steps",
                static_cast<long long>(prefill_tokens), prefill_seconds, prefill_tokens_per_second(),
                static_cast<long long>(decode_tokens), decode_seconds, decode_tokens_per_second(),
                format_bytes(double(weight_bytes_read + kv_bytes_read)).c_str(), bytes_per_second() / 1e9,
                static_cast<long long>(steps));
  return line;
}

}  // namespace so
