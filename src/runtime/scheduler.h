// The throughput scheduler behind Engine::serve (ARCHITECTURE.md section 3): continuous
// batching with verification. A pass drafts for some rows, runs one target step over the
// rows it verifies (each row's pending token plus its drafts, then prefill chunks of new
// prompts in the rest of the token budget), and accepts: each row keeps a prefix of its
// drafts plus one token of the target's, and both KV caches are truncated to what it kept.
//
// Two loops over the same parts:
//   serial       each pass drafts for every generating row, then verifies them all (the
//                reference loop, and the better one when drafting is cheap);
//   interleaved  rows are split into two halves; while the target verifies one, the
//                drafter drafts for the other on its own thread (the backend lets their
//                ops take turns, the target first), then the halves swap.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/engine.h"

namespace so {

struct ActiveRow {
  uint64_t handle = 0;  // the feed's
  const GenerationRequest* request = nullptr;
  GenerationResult result;
  int32_t kv_row = 0;
  int32_t prompt_fed = 0;  // prompt tokens already in the KV cache
  int32_t pending = -1;    // emitted, not yet fed (generating rows)
  int half = 0;            // interleaved: the half it is verified with
  bool drafted = false;    // `drafts` wait for the row's next verification
  Proposal drafts;
  RowAcceptance acceptance;
  std::string text;  // the generated pieces, kept only to look for stop strings
  bool generating() const { return pending >= 0; }
};

// Drafts for a set of rows: planned on the scheduler's thread, proposed on any thread.
struct DraftJob {
  std::vector<DraftQuery> queries;
  std::vector<size_t> slots;  // the row of each query (rows retire only after the pass)
  std::vector<Proposal> proposals;
  Status status;
  double start_seconds = 0, seconds = 0, catch_up_seconds = 0;
  int64_t fed_tokens = 0;
  bool empty() const { return queries.empty(); }
};

class Scheduler {
 public:
  Scheduler(Engine& engine, RequestFeed& feed);

  // Passes until the feed is closed and every row is done, serial or interleaved as the
  // options (or a re-plan) say.
  void run();

 private:
  // Fills free rows from the feed (blocking only while nothing runs) and drops cancelled
  // rows. False once the feed is closed and every row is done.
  bool admit();
  // Draft lengths for the generating rows of `half` (-1: all) that hold no drafts yet.
  DraftJob plan_drafts(int half);
  // Runs the drafter (any thread; touches only the drafter).
  void propose(DraftJob& job) const;
  // On the scheduler's thread: costs, stats, and the proposals into their rows.
  void finish_drafts(DraftJob& job);
  // One target step over the generating rows of `half` (-1: all) and prefill chunks;
  // acceptance, emission and KV truncation.
  void verify(int half);
  void accept(const StepInput& input, const std::vector<size_t>& step_slots, const std::vector<int32_t>& kv_before);
  // Moves generating rows between halves so they differ by at most one.
  void balance_halves();
  void serial_pass();
  void interleaved_pass();
  // Counts the pass, then takes a new plan if the replanner has one.
  void end_pass(bool ran);
  void finish(size_t slot, FinishReason reason);
  void retire_finished();
  bool in_half(const ActiveRow& row, int half) const { return half < 0 || row.half == half; }

  Engine& engine_;
  RequestFeed& feed_;
  const EngineOptions& options_;
  std::vector<ActiveRow> active_;
  std::vector<std::pair<size_t, FinishReason>> finished_;  // (slot, reason), retired after the pass
  std::vector<FedRequest> arrived_;
  std::vector<float> logits_;
  std::vector<int32_t> row_tokens_;
  bool warned_draft_failure_ = false;
  // What a re-plan may change between passes (they start as the options say).
  int max_rows_;
  bool interleaved_;
  int verifying_ = 0;  // interleaved: the half the target verifies this pass
};

}  // namespace so
