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

std::string EngineStats::to_json() const {
  char json[768];
  std::snprintf(json, sizeof json,
                "{\"steps\": %lld, \"prefill_tokens\": %lld, \"prefill_seconds\": %.6f, \"prefill_tokens_per_second\": %.3f, "
                "\"decode_tokens\": %lld, \"decode_seconds\": %.6f, \"decode_tokens_per_second\": %.3f, "
                "\"weight_bytes_read\": %lld, \"kv_bytes_read\": %lld, \"bytes_per_second\": %.1f}",
                static_cast<long long>(steps), static_cast<long long>(prefill_tokens), prefill_seconds,
                prefill_tokens_per_second(), static_cast<long long>(decode_tokens), decode_seconds,
                decode_tokens_per_second(), static_cast<long long>(weight_bytes_read),
                static_cast<long long>(kv_bytes_read), bytes_per_second());
  return json;
}

}  // namespace so
