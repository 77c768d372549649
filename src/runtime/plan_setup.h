// The planner applied to engine options: shapes from the model files, the plan, and the
// options it sets (only those the user left alone).
#pragma once

#include "planner/planner.h"
#include "runtime/engine.h"

namespace so {

struct PlanRequest {
  Workload workload;
  double alpha = 0.5;  // acceptance estimate
  HardwareProfile profile;
  int64_t host_budget_bytes = 0;
};

// Which engine options a plan sets; a user's flag keeps its value.
struct PlanOverrides {
  bool max_rows = false;
  bool draft_max = false;
  bool ring_slots = false;
  bool schedule = false;
  bool kv_cache = false;  // --kv-cache device or host (auto leaves it to the plan)
  bool step_tokens = false;
  bool draft_subbatch = false;
};
// Loads the target (and draft) model's shapes named in `options` and plans, keeping the
// options the user gave. The device budget is options.offload.device_budget_bytes, or the
// profile's device memory.
Result<Plan> plan_for(const EngineOptions& options, const PlanRequest& request, const PlanOverrides& given);
// The planner's input for the same (to plan again later, e.g. a Replanner).
Result<PlanInput> plan_input_for(const EngineOptions& options, const PlanRequest& request, const PlanOverrides& given);
// Sets every choice of the plan the user did not fix: rows, draft length and sub-batch,
// schedule, ring depth, KV placement, step tokens, and the host budget when the plan reads
// from disk. The engine's stats JSON records what it then ran (Engine::applied_plan_json).
void apply_plan(const Plan& plan, const PlanOverrides& given, EngineOptions& options);

}  // namespace so
