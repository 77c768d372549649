// The planner (ARCHITECTURE.md section 2): from a target (and draft) shape, a hardware
// profile, a workload, memory budgets and an acceptance estimate, the plan that maximizes
// predicted tokens/second of the whole job: rows per pass, draft length, ring depth, KV
// placement, step size, draft sub-batch, how much of the target stays resident (the same
// function as the layer streamer's, planner/placement.h). A pure function; needs no GPU.
//
// The model of one decode pass with R rows, draft length k, serial draft-then-verify:
//   draft   = k draft steps of R tokens (in sub-batches), the first also feeding the tau
//             tokens each row committed last pass (0 for n-gram lookup)
//   compute = the target's step over R(k+1) tokens, all of them through the head; with the
//             KV cache in host memory, attention runs on host threads at the profile's
//             cpu_attention_gflops and q, k, v and the output cross the link each layer
//   copy    = streamed bytes / pinned link bandwidth
//   pass    = draft + max(copy - min(draft, ring copy time), compute)
// (the ring lets the copy engine run ahead by its depth while the draft works), and the
// pass commits R * tau tokens, tau = (1 - alpha^(k+1)) / (1 - alpha). Interleaved half-
// batches verify R/2 rows per pass while the draft drafts for the other R/2; the draft
// shares the compute with the target but not the copies:
//   pass = max(copy, compute(R/2 (k+1)) + draft(R/2)),  committing R/2 * tau tokens.
// Prefill runs in steps of the step budget (at most the admitted rows' prompts), each
// max(copy, compute). The job's tokens/s is generated tokens over prefill plus decode time.
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
  int64_t host_budget_bytes = 0;    // pinned host slabs for streamed weights; 0: what the host's memory holds
  int max_draft = 8;
  int max_rows = 1024;
  int step_tokens = 512;        // the smallest step (prefill chunk) the planner considers
  int micro_batch_tokens = 512; // tokens a layer computes at once (bounds the activations)
  int kv_page_tokens = 256;     // a row's KV grows a page of this many positions at a time
  int staging_slots = 3;
  // Choices the user fixed (flags override the plan); 0 or -1: the planner's.
  int fixed_rows = 0;
  int fixed_draft = -1;  // -1: the planner's
  int fixed_ring = 0;
  int fixed_schedule = -1;  // 0 serial, 1 interleaved; -1: the planner's
  int fixed_kv = -1;        // 0 device, 1 host; -1: the planner's
  bool fixed_step_tokens = false;  // the step budget is step_tokens
  int fixed_draft_subbatch = 0;
};

// One point of the planner's search.
struct PlanChoice {
  int rows = 1;
  int draft_length = 0;
  int ring_slots = 2;
  bool kv_on_device = true;
  bool interleaved = false;
  int prefill_chunk = 512;  // tokens per forward step (the verified tokens ride in it too)
  int draft_subbatch = 0;   // 0: the largest that fits
};

struct StageTimes {
  double copy = 0;
  double compute = 0;         // the target's step, host attention included
  double host_attention = 0;  // of compute: attention on host threads and the activations' trips
  double draft = 0;
  double pass = 0;
};

struct Plan {
  Workload workload;        // what it was planned for
  int rows = 1;             // rows generating at once
  bool interleaved = false; // two half-batches: a pass verifies rows / 2 while the draft drafts the rest
  int draft_length = 0;     // k
  int draft_subbatch = 0;   // rows the draft runs at once
  int ring_slots = 2;
  bool kv_on_device = true;
  int prefill_chunk = 512;  // tokens per forward step
  int64_t resident_bytes = 0;  // target weights kept in device memory (with the ring: <= the budget)
  int64_t streamed_bytes = 0;  // per pass
  int64_t disk_bytes = 0;      // per pass, of the streamed: read from the model file (the disk tier)
  int64_t host_budget_bytes = 0;  // pinned host memory for streamed weights the plan assumes; 0: no cap
  int64_t weight_budget_bytes = 0;  // device memory for the target's weights (--device-mem, or what the rest leaves)
  int64_t kv_bytes = 0;        // the target's KV cache at the longest context, in device or host memory
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
Result<Plan> evaluate_plan(const PlanInput& input, const PlanChoice& choice);
// The best plan over rows, draft length, schedule, ring depth, KV placement, step size and
// draft sub-batch.
Result<Plan> make_plan(const PlanInput& input);

}  // namespace so
