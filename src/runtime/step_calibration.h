// Measures a model's forward step on this machine (planner/model_shape.h StepCost): the
// planner's compute term from real steps instead of large-matrix throughput, which misses
// what small matrices and per-op synchronization cost.
#pragma once

#include <string>

#include "planner/model_shape.h"
#include "runtime/engine.h"

namespace so {

// The key a profile stores a model's step cost under: its file name and size.
std::string model_key(const std::string& model_path);

// Times steps of 1 to 256 one-token rows (every row through the head, as verification
// runs) and prompt chunks of 64 to 1024 tokens (one row through the head), best of a few
// runs each.
Result<StepCost> measure_step_cost(const EngineOptions& options, double seconds_per_point);

}  // namespace so
