// Re-planning between passes (ARCHITECTURE.md section 4): the plan was made for an
// acceptance estimate; when the acceptance measured since the last plan drifts from it,
// the planner runs again with the measured value, and the scheduler takes the new rows,
// draft length and schedule at the next pass boundary. Placement (resident bytes, ring
// depth) stays: moving weights mid-job costs more than it could win back.
#pragma once

#include <cstdint>
#include <optional>

#include "planner/planner.h"

namespace so {

struct Replan {
  int64_t pass = 0;
  double measured_alpha = 0;
  Plan plan;
};

class Replanner {
 public:
  // min_drafted: drafts to measure before judging; drift: how far the measured acceptance
  // may be from the estimate before the plan changes.
  Replanner(PlanInput input, Plan plan, int64_t min_drafted = 256, double drift = 0.1);

  // After a pass, with the run's drafted and accepted totals; a new plan when it changed.
  std::optional<Replan> observe(int64_t pass, int64_t drafted, int64_t accepted);
  const Plan& plan() const { return plan_; }

 private:
  PlanInput input_;
  Plan plan_;
  int64_t min_drafted_;
  double drift_;
  int64_t drafted_at_plan_ = 0, accepted_at_plan_ = 0;
};

}  // namespace so
