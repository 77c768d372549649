#include "runtime/replanner.h"

#include <cmath>

namespace so {

Replanner::Replanner(PlanInput input, Plan plan, int64_t min_drafted, double drift)
    : input_(std::move(input)), plan_(std::move(plan)), min_drafted_(min_drafted), drift_(drift) {
  // The engine is built: its ring, KV cache, step budget and draft sub-batch stay.
  input_.fixed_ring = plan_.ring_slots;
  input_.fixed_kv = plan_.kv_on_device ? 0 : 1;
  input_.fixed_step_tokens = true;
  input_.step_tokens = plan_.prefill_chunk;
  if (plan_.draft_subbatch > 0) input_.fixed_draft_subbatch = plan_.draft_subbatch;
}

std::optional<Replan> Replanner::observe(int64_t pass, int64_t drafted, int64_t accepted) {
  const int64_t window_drafted = drafted - drafted_at_plan_;
  if (window_drafted < min_drafted_) return std::nullopt;
  const double measured = double(accepted - accepted_at_plan_) / double(window_drafted);
  drafted_at_plan_ = drafted;
  accepted_at_plan_ = accepted;
  if (std::abs(measured - input_.alpha) <= drift_) return std::nullopt;
  input_.alpha = measured;
  Result<Plan> plan = make_plan(input_);
  if (!plan.ok()) return std::nullopt;  // the old plan fit; keep it
  const bool changed =
      plan->rows != plan_.rows || plan->draft_length != plan_.draft_length || plan->interleaved != plan_.interleaved;
  plan_ = *plan;
  if (!changed) return std::nullopt;
  return Replan{pass, measured, plan_};
}

}  // namespace so
