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

namespace {

struct StepPoint {
  int rows = 0;  // rows of `tokens` tokens each
  int tokens = 0;
  bool all_logits = false;
};

// Solves the 3x3 normal equations of y = c0 + c1 * x1 + c2 * x2.
std::array<double, 3> fit(const std::vector<std::array<double, 3>>& points) {
  double a[3][4] = {};
  for (const auto& [x1, x2, y] : points) {
    const double x[3] = {1.0, x1, x2};
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) a[i][j] += x[i] * x[j];
      a[i][3] += x[i] * y;
    }
  }
  for (int column = 0; column < 3; ++column) {
    int pivot = column;
    for (int row = column + 1; row < 3; ++row) {
      if (std::abs(a[row][column]) > std::abs(a[pivot][column])) pivot = row;
    }
    for (int j = 0; j < 4; ++j) std::swap(a[column][j], a[pivot][j]);
    for (int row = 0; row < 3; ++row) {
      if (row == column || a[column][column] == 0) continue;
      const double factor = a[row][column] / a[column][column];
      for (int j = 0; j < 4; ++j) a[row][j] -= factor * a[column][j];
    }
  }
  std::array<double, 3> c{};
  for (int i = 0; i < 3; ++i) c[i] = a[i][i] != 0 ? a[i][3] / a[i][i] : 0.0;
  return c;
}

}  // namespace

Result<StepCost> measure_step_cost(const EngineOptions& options, double seconds_per_point) {
  EngineOptions resident = options;
  resident.offload.device_budget_bytes = 0;
  resident.spec = SpecOptions{};
  resident.max_step_tokens = 1 << 16;
  SO_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::create(resident));
  KvCache& kv = engine->kv_cache();
  std::vector<float> logits;
  const std::vector<StepPoint> points = {{1, 1, true},  {4, 1, true},   {16, 1, true},  {32, 1, true},
                                         {64, 1, true}, {1, 64, false}, {1, 128, false}};
  std::vector<std::array<double, 3>> samples;
  for (const StepPoint& point : points) {
    double best = 1e30;
    const Stopwatch budget;
    for (int run = 0; run < 3 || (budget.elapsed_seconds() < seconds_per_point && run < 50); ++run) {
      std::vector<int32_t> rows;
      StepBuilder step(kv);
      // note: token ids past the specials, the same every run; the values do not matter.
      const std::vector<int32_t> tokens(size_t(point.tokens), 100);
      for (int r = 0; r < point.rows; ++r) {
        rows.push_back(kv.add_row());
        SO_TRY(step.add_row(rows.back(), tokens, point.all_logits ? LogitsWanted::kAll : LogitsWanted::kLast));
      }
      const Stopwatch watch;
      SO_TRY(engine->forward(step, logits));
      best = std::min(best, watch.elapsed_seconds());
      for (int32_t row : rows) kv.remove_row(row);
    }
    const int logit_rows = point.all_logits ? point.rows * point.tokens : point.rows;
    samples.push_back({double(point.rows) * point.tokens, double(logit_rows), best});
  }
  const auto [fixed, per_token, per_logit] = fit(samples);
  return StepCost{std::max(0.0, fixed), std::max(0.0, per_token), std::max(0.0, per_logit)};
}

}  // namespace so
