#include "runtime/pass_log.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "base/timer.h"

namespace so {

double PassRecord::largest_stage_seconds() const {
  return std::max(draft_seconds + compute_seconds + host_seconds, copy_busy_seconds);
}

std::string pass_line(const PassRecord& r) {
  char line[320];
  std::snprintf(line, sizeof line,
                "pass %lld: %d rows, %lld verified + %lld prompt tokens, %lld/%lld drafts accepted, %lld committed | "
                "%.3f s: compute %.3f (host attention %.3f), draft %.3f, waiting for copies %.3f, scheduler %.3f",
                (long long)r.index, r.rows, (long long)r.verify_tokens, (long long)r.prefill_tokens,
                (long long)r.accepted, (long long)r.drafted, (long long)r.committed, r.seconds(), r.compute_seconds,
                r.host_attention_seconds, r.draft_seconds, r.copy_wait_seconds, r.host_seconds);
  return line;
}

PassLog::PassLog(bool keep_spans, size_t max_records)
    : origin_(now_seconds()), keep_spans_(keep_spans), max_records_(max_records) {}

int64_t PassLog::begin_pass() {
  if (max_records_ > 0 && records_.size() >= max_records_) {
    records_.erase(records_.begin(), records_.begin() + std::ptrdiff_t(records_.size() / 2));
  }
  PassRecord record;
  record.index = n_passes_++;
  record.start_seconds = now_seconds() - origin_;
  records_.push_back(record);
  return record.index;
}

void PassLog::end_pass() {
  PassRecord& record = records_.back();
  record.end_seconds = now_seconds() - origin_;
  record.host_seconds = std::max(0.0, record.seconds() - record.draft_seconds - record.compute_seconds -
                                          record.copy_wait_seconds);
  if (keep_spans_) {
    add_span(TraceTrack::kPass, "pass " + std::to_string(record.index), record.start_seconds + origin_,
             record.end_seconds + origin_);
  }
}

void PassLog::add_copy_spans(const std::vector<StreamSpan>& spans) {
  for (const StreamSpan& span : spans) {
    const double start = span.start_seconds - origin_, end = span.end_seconds - origin_;
    // Recent passes first: a copy finishes at most a ring's depth after it starts.
    for (auto record = records_.rbegin(); record != records_.rend(); ++record) {
      const double pass_end = record->end_seconds > 0 ? record->end_seconds : end;
      const double overlap = std::min(end, pass_end) - std::max(start, record->start_seconds);
      if (overlap > 0) record->copy_busy_seconds += overlap;
      if (record->start_seconds <= start) break;
    }
    if (keep_spans_) add_span(TraceTrack::kCopy, span.label, span.start_seconds, span.end_seconds);
  }
}

void PassLog::add_span(TraceTrack track, std::string label, double start_seconds, double end_seconds) {
  if (keep_spans_) spans_.push_back({track, std::move(label), start_seconds, end_seconds});
}

std::string PassLog::records_json() const {
  nlohmann::ordered_json passes = nlohmann::ordered_json::array();
  for (const PassRecord& r : records_) {
    passes.push_back({{"index", r.index},
                      {"start_seconds", r.start_seconds},
                      {"seconds", r.seconds()},
                      {"rows", r.rows},
                      {"verify_tokens", r.verify_tokens},
                      {"prefill_tokens", r.prefill_tokens},
                      {"drafted", r.drafted},
                      {"accepted", r.accepted},
                      {"committed", r.committed},
                      {"streamed_bytes", r.streamed_bytes},
                      {"draft_seconds", r.draft_seconds},
                      {"compute_seconds", r.compute_seconds},
                      {"host_attention_seconds", r.host_attention_seconds},
                      {"activation_transfer_seconds", r.activation_transfer_seconds},
                      {"host_seconds", r.host_seconds},
                      {"copy_wait_seconds", r.copy_wait_seconds},
                      {"copy_busy_seconds", r.copy_busy_seconds},
                      {"achieved_gbps", r.copy_busy_seconds > 0 ? r.streamed_bytes / r.copy_busy_seconds / 1e9 : 0.0},
                      {"predicted_seconds", r.predicted_seconds}});
  }
  return passes.dump();
}

Status PassLog::write_chrome_trace(const std::string& path) const {
  // Tracks are threads of one process; times in microseconds from the log's origin.
  const char* track_names[] = {"passes", "compute (target)", "copy engine (host to device)", "draft",
                               "disk reads (file to host)", "attention on host threads (host KV)",
                               "activations (q, k, v to host, attention back)"};
  nlohmann::json events = nlohmann::json::array();
  for (int track = 0; track < int(std::size(track_names)); ++track) {
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", track + 1},
                      {"args", {{"name", track_names[track]}}}});
    events.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", 1}, {"tid", track + 1},
                      {"args", {{"sort_index", track}}}});
  }
  for (const TraceSpan& span : spans_) {
    events.push_back({{"name", span.label},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", static_cast<int>(span.track) + 1},
                      {"ts", (span.start_seconds - origin_) * 1e6},
                      {"dur", std::max(0.0, span.end_seconds - span.start_seconds) * 1e6}});
  }
  std::ofstream out(path);
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() << "\n";
  if (!out) return io_error("cannot write the trace file '", path, "'");
  return Status::Ok();
}

}  // namespace so
