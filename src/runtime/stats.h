// What a run achieved, in tokens, seconds and bytes (ARCHITECTURE.md section 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace so {

// The scheduler took a new plan between passes (the measured acceptance drifted).
struct ReplanRecord {
  int64_t pass = 0;
  double alpha = 0;  // measured since the last plan
  int rows = 0;
  int draft_length = 0;
  bool interleaved = false;
};

struct EngineStats {
  int64_t steps = 0;
  int64_t prefill_tokens = 0;
  // Tokens committed by decode and verification passes; with speculation a pass commits
  // up to k + 1 per row.
  int64_t decode_tokens = 0;
  // Tokens the target ran in decode and verification passes (pending + drafts per row).
  int64_t verify_tokens = 0;
  // note: a step mixing prefill chunks and decode tokens splits its time between the
  // two in proportion to their token counts.
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // the target's decode/verification time
  double draft_seconds = 0.0;   // the drafter's time, its catch-up on prompts included
  double draft_catch_up_seconds = 0.0;  // the part spent reading prompts and committed tokens
  int64_t draft_fed_tokens = 0;         // tokens through the draft model's layers
  double draft_hidden_seconds = 0.0;  // of which it ran beside a target step (interleaved)
  int64_t weight_bytes_read = 0;  // weights streamed through compute, once per step
  int64_t kv_bytes_read = 0;      // KV cache read by attention
  int64_t streamed_bytes = 0;     // offload: weights copied host -> device
  double copy_wait_seconds = 0.0; // offload: compute waiting for a layer's copy
  double copy_busy_seconds = 0.0; // offload: the copy engine's busy time
  int64_t disk_read_bytes = 0;    // disk tier: streamed layers read from the model file
  double disk_busy_seconds = 0.0; // disk tier: the disk stream's busy time
  // Host KV tier: host threads' attention, and the activations' trips (q, k, v to the host,
  // the attention output back) with the time compute waited for them.
  double host_attention_seconds = 0.0;
  int64_t activation_bytes_to_host = 0;
  int64_t activation_bytes_to_device = 0;
  double activation_transfer_seconds = 0.0;
  double pass_seconds = 0.0;      // wall time of generate()'s passes (drafting included)
  int64_t passes = 0;

  // Speculation: per row and pass, k drafted, n accepted (a prefix), n + 1 committed.
  int64_t spec_row_passes = 0;  // row-passes that verified at least one draft
  int64_t drafted_tokens = 0;
  int64_t accepted_tokens = 0;
  std::vector<int64_t> accepted_histogram;  // [n] = row-passes that accepted n drafts
  std::vector<ReplanRecord> replans;

  double seconds() const { return prefill_seconds + decode_seconds + draft_seconds - draft_hidden_seconds; }
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0; }
  // Generated tokens per second of decoding, drafting included.
  double decode_tokens_per_second() const {
    const double seconds = decode_seconds + draft_seconds - draft_hidden_seconds;
    return seconds > 0 ? decode_tokens / seconds : 0;
  }
  double bytes_per_second() const {
    return seconds() > 0 ? double(weight_bytes_read + kv_bytes_read) / seconds() : 0;
  }
  // Per-token acceptance rate alpha: accepted / drafted.
  double acceptance_rate() const { return drafted_tokens > 0 ? double(accepted_tokens) / drafted_tokens : 0; }
  // Tokens committed per row per speculative pass (tau).
  double tokens_per_pass() const {
    return spec_row_passes > 0 ? double(accepted_tokens + spec_row_passes) / spec_row_passes : 0;
  }
  double mean_draft_length() const { return spec_row_passes > 0 ? double(drafted_tokens) / spec_row_passes : 0; }
  void record_verification(int drafted, int accepted);

  // "prefill 512 tok 0.82 s (624 tok/s) | decode ... | read 12.3 GiB (11.2 GB/s) | 160 steps"
  // and, with speculation, "| spec alpha 0.71 tau 2.9 k 3.2 | draft 1.2 s"
  std::string summary_line() const;
  // The same as a JSON object (for benchmarks).
  std::string to_json() const;
};

}  // namespace so
