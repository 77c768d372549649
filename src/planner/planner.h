// The planner (ARCHITECTURE.md section 2): from a target (and draft) shape, a hardware
// profile, a workload, memory budgets and an acceptance estimate, the plan that maximizes
// predicted tokens/second of the whole job: rows per pass, draft length, ring depth, KV
// placement, how much of the target stays resident. A pure function; needs no GPU.
//
// The model of one decode pass with R rows, draft length k, serial draft-then-verify:
//   draft   = k draft steps of R tokens, the first also feeding the tau tokens each row
//             committed last pass (0 for n-gram lookup)
//   compute = the target's step over R(k+1) tokens, all of them through the head
//   copy    = streamed bytes / pinned link bandwidth
//   pass    = draft + max(copy - min(draft, ring copy time), compute)
// (the ring lets the copy engine run ahead by its depth while the draft works), and the
// pass commits R * tau tokens, tau = (1 - alpha^(k+1)) / (1 - alpha). Interleaved half-
// batches verify R/2 rows per pass while the draft drafts for the other R/2; the draft
// shares the compute with the target but not the copies:
//   pass = max(copy, compute(R/2 (k+1)) + draft(R/2)),  committing R/2 * tau tokens.
// Prefill runs in chunks of the step budget, each max(copy, compute). The job's tokens/s
// is generated tokens over prefill plus decode time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/status.h"
#include "planner/cost_model.h"
#include "planner/model_shape.h"
#include "planner/profile.h"

namespace so {

enum class DraftSource { kNone, kModel, kSelf, kNgram };

struct Workload {
  int n_prompts = 1;
  int prompt_tokens = 128;  // mean
  int gen_tokens = 128;     // per prompt
};

struct PlanInput {
  ModelShape target;
  DraftSource draft = DraftSource::kNone;
  ModelShape draft_model;  // kModel: the draft model; kSelf: the target's first layers
  double alpha = 0.6;      // acceptance estimate per drafted token
  Workload workload;
  HardwareProfile profile;
  int64_t device_budget_bytes = 0;  // the target's weights in device memory; 0: the profile's device memory
  int64_t host_budget_bytes = 0;    // 0: the profile's host memory
  int max_draft = 8;
  int max_rows = 256;
  int step_tokens = 512;  // prefill chunk (tokens per forward step)
  // Choices the user fixed (flags override the plan); 0: the planner's.
  int fixed_rows = 0;
  int fixed_draft = -1;  // -1: the planner's
  int fixed_ring = 0;
  int fixed_schedule = -1;  // 0 serial, 1 interleaved; -1: the planner's
};

struct StageTimes {
  double copy = 0;
  double compute = 0;
  double draft = 0;
  double pass = 0;
};

struct Plan {
  int rows = 1;             // rows generating at once
  bool interleaved = false; // two half-batches: a pass verifies rows / 2 while the draft drafts the rest
  int draft_length = 0;     // k
  int draft_subbatch = 0;   // rows the draft runs at once
  int ring_slots = 2;
  bool kv_on_device = true;
  int prefill_chunk = 512;
  int64_t resident_bytes = 0;  // target weights kept in device memory (with the ring: <= the budget)
  int64_t streamed_bytes = 0;  // per pass
  int64_t disk_bytes = 0;      // per pass, of the streamed: read from the model file (the disk tier)
  int64_t device_bytes = 0;    // everything the plan puts in device memory
  int64_t host_bytes = 0;      // pinned host slabs, plus KV when it lives there
  StageTimes decode;           // one decode pass
  double tokens_per_pass = 0;  // committed, all rows
  double decode_tokens_per_second = 0;
  double prefill_seconds = 0;
  double job_seconds = 0;
  double tokens_per_second = 0;  // generated tokens over the whole job

  std::string to_json() const;
  std::string describe() const;  // human-readable, one item per line
};

// The predicted plan for fixed choices; an error when it does not fit the budgets.
Result<Plan> evaluate_plan(const PlanInput& input, int rows, int draft_length, int ring_slots, bool kv_on_device,
                           bool interleaved = false);
// The best plan over rows, draft length, schedule, ring depth and KV placement.
Result<Plan> make_plan(const PlanInput& input);

}  // namespace so
