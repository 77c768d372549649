#include "runtime/step_calibration.h"

#include <array>
#include <cmath>
#include <filesystem>

#include "base/timer.h"

namespace so {

std::string model_key(const std::string& model_path) {
  std::error_code error;
  const auto bytes = std::filesystem::file_size(model_path, error);
  return str_cat(std::filesystem::path(model_path).filename().string(), ":", error ? 0 : bytes);
}

Result<StepCost> measure_step_cost(const EngineOptions& options, double seconds_per_point) {
  EngineOptions resident = options;
  resident.offload.device_budget_bytes = 0;
  resident.spec = SpecOptions{};
  resident.max_step_tokens = 1 << 16;
  SO_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::create(resident));
  KvCache& kv = engine->kv_cache();
  std::vector<float> logits;
  // Best of a few runs of a step of `rows` rows of `tokens` tokens each.
  auto timed = [&](int rows, int tokens, bool all_logits) -> Result<double> {
    double best = 1e30;
    const Stopwatch budget;
    for (int run = 0; run < 3 || (budget.elapsed_seconds() < seconds_per_point && run < 50); ++run) {
      std::vector<int32_t> ids;
      StepBuilder step(kv);
      // note: token ids past the specials, the same every run; the values do not matter.
      const std::vector<int32_t> row_tokens(size_t(tokens), 100);
      for (int r = 0; r < rows; ++r) {
        ids.push_back(kv.add_row());
        SO_TRY(step.add_row(ids.back(), row_tokens, all_logits ? LogitsWanted::kAll : LogitsWanted::kLast));
      }
      const Stopwatch watch;
      SO_TRY(engine->forward(step, logits));
      best = std::min(best, watch.elapsed_seconds());
      for (int32_t id : ids) kv.remove_row(id);
    }
    return best;
  };
  StepCost cost;
  for (int rows : {1, 2, 4, 8, 16, 32, 64, 128, 256}) {
    SO_ASSIGN_OR_RETURN(const double seconds, timed(rows, 1, true));
    cost.verify.emplace_back(rows, seconds);
  }
  for (int tokens : {64, 256, 1024}) {
    SO_ASSIGN_OR_RETURN(const double seconds, timed(1, tokens, false));
    cost.prefill.emplace_back(tokens, seconds);
  }
  return cost;
}

}  // namespace so
