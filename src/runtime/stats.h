// What a run achieved, in tokens, seconds and bytes (ARCHITECTURE.md section 2).
#pragma once

#include <cstdint>
#include <string>

namespace so {

struct EngineStats {
  int64_t steps = 0;
  int64_t prefill_tokens = 0;
  int64_t decode_tokens = 0;
  // note: a step mixing prefill chunks and decode tokens splits its time between the
  // two in proportion to their token counts.
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  int64_t weight_bytes_read = 0;  // weights streamed through compute, once per step
  int64_t kv_bytes_read = 0;      // KV cache read by attention

  double seconds() const { return prefill_seconds + decode_seconds; }
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0; }
  double bytes_per_second() const {
    return seconds() > 0 ? double(weight_bytes_read + kv_bytes_read) / seconds() : 0;
  }
  // "prefill 512 tok 0.82 s (624 tok/s) | decode ... | read 12.3 GiB (11.2 GB/s) | 160 steps"
  std::string summary_line() const;
  // The same as a JSON object (for benchmarks).
  std::string to_json() const;
};

}  // namespace so
