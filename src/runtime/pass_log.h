// Per-pass metrics and the timeline (ARCHITECTURE.md section 2): what each resource did in
// each pass of the target, so predicted and measured times can be compared and a user can
// see the overlap in a trace viewer (`--trace FILE`, Chrome trace-event JSON).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/stream.h"
#include "base/status.h"

namespace so {

// One target pass: its drafting, its step (verification + prefill chunks) and acceptance.
struct PassRecord {
  int64_t index = 0;
  double start_seconds = 0;  // since the log's origin
  double end_seconds = 0;
  int rows = 0;  // rows in the target's step
  int64_t verify_tokens = 0;   // pending + draft tokens verified
  int64_t prefill_tokens = 0;  // prompt tokens that rode along
  int64_t drafted = 0;
  int64_t accepted = 0;
  int64_t committed = 0;  // tokens the pass added to outputs' KV (accepted + one per row)
  int64_t streamed_bytes = 0;
  double draft_seconds = 0;      // the drafter's compute
  double compute_seconds = 0;    // the target's compute (its step, minus waits for copies)
  // Of compute_seconds, with the KV cache in host memory: host threads' attention, and
  // waiting for q, k, v to reach the host and the output to come back.
  double host_attention_seconds = 0;
  double activation_transfer_seconds = 0;
  double host_seconds = 0;       // the scheduler's own work: building the step, acceptance, sampling
  double copy_wait_seconds = 0;  // compute waiting for a streamed layer
  double copy_busy_seconds = 0;  // the copy engine's busy time inside the pass
  double predicted_seconds = 0;  // the planner's prediction; 0 without a plan

  double seconds() const { return end_seconds - start_seconds; }
  // The busiest resource's time: compute threads (target, draft and the scheduler share
  // them on the CPU backend) or the copy engine.
  double largest_stage_seconds() const;
  double stage_sum_seconds() const { return draft_seconds + compute_seconds + host_seconds + copy_busy_seconds; }
};

enum class TraceTrack { kPass, kCompute, kCopy, kDraft, kDisk, kHostAttention, kActivations };

struct TraceSpan {
  TraceTrack track = TraceTrack::kCompute;
  std::string label;
  double start_seconds = 0;  // now_seconds() clock
  double end_seconds = 0;
};

class PassLog {
 public:
  // keep_spans: also keep every span for a trace file (memory grows with the run).
  // max_records: past it the oldest half of the records is dropped; 0 keeps all.
  explicit PassLog(bool keep_spans = false, size_t max_records = 0);
  bool keeps_spans() const { return keep_spans_; }

  // Opens a pass at now; returns its index.
  int64_t begin_pass();
  PassRecord& current() { return records_.back(); }
  // Closes the current pass at now.
  void end_pass();
  // Drops the current pass (it ran no step).
  void discard_pass() {
    records_.pop_back();
    --n_passes_;
  }

  // Copy-engine spans, finished in any order of passes: each span's busy time is split
  // over the passes it overlaps.
  void add_copy_spans(const std::vector<StreamSpan>& spans);
  void add_span(TraceTrack track, std::string label, double start_seconds, double end_seconds);

  const std::vector<PassRecord>& records() const { return records_; }
  double origin_seconds() const { return origin_; }

  // Per-pass records as a JSON array.
  std::string records_json() const;
  // Chrome trace-event JSON (chrome://tracing, Perfetto): one track per resource.
  Status write_chrome_trace(const std::string& path) const;

 private:
  double origin_;
  bool keep_spans_;
  size_t max_records_;
  int64_t n_passes_ = 0;
  std::vector<PassRecord> records_;
  std::vector<TraceSpan> spans_;
};

// A pass as one log line (--verbose): rows, tokens, acceptance, and where its time went so far
// (copy spans land after it ends, so its copy-busy time is not in it).
std::string pass_line(const PassRecord& record);

}  // namespace so
