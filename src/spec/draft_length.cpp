#include "spec/draft_length.h"

#include <algorithm>
#include <cmath>

namespace so {
namespace {

constexpr double kRowForgetting = 0.8;    // a row's acceptance follows the text it is in
constexpr double kCostForgetting = 0.97;  // costs drift slowly
constexpr double kPriorAlpha = 0.6;
constexpr double kPriorWeight = 2.0;      // in pseudo-observations

}  // namespace

double expected_tokens_per_pass(double alpha, int k) {
  if (alpha >= 1.0) return k + 1.0;
  return (1.0 - std::pow(alpha, k + 1)) / (1.0 - alpha);
}

double RowAcceptance::alpha() const {
  return (accepted + kPriorAlpha * kPriorWeight) / (accepted + rejected + kPriorWeight);
}

void DraftLengthPolicy::observe_row(RowAcceptance& row, int drafted, int accepted) {
  // note: a pass without drafts forgets too, so a row that stopped drafting drifts back
  // toward the prior and tries again: the rule's exploration.
  row.accepted = kRowForgetting * row.accepted + accepted;
  row.rejected = kRowForgetting * row.rejected + (accepted < drafted ? 1.0 : 0.0);
}

void DraftLengthPolicy::observe_step(int64_t step_tokens, double seconds) {
  const double x = double(step_tokens);
  s0_ = kCostForgetting * s0_ + 1.0;
  sx_ = kCostForgetting * sx_ + x;
  sy_ = kCostForgetting * sy_ + seconds;
  sxx_ = kCostForgetting * sxx_ + x * x;
  sxy_ = kCostForgetting * sxy_ + x * seconds;
}

void DraftLengthPolicy::observe_draft_step(double seconds) {
  draft_step_seconds_ = has_draft_sample_ ? 0.8 * draft_step_seconds_ + 0.2 * seconds : seconds;
  has_draft_sample_ = true;
}

double DraftLengthPolicy::verify_seconds(double tokens) const {
  if (s0_ <= 0.0) return 1.0 + 0.1 * tokens;  // nothing measured yet: any monotone guess
  const double mean_x = sx_ / s0_, mean_y = sy_ / s0_;
  const double spread = sxx_ / s0_ - mean_x * mean_x;
  double slope = spread > 1e-9 * std::max(1.0, mean_x * mean_x) ? (sxy_ / s0_ - mean_x * mean_y) / spread : -1.0;
  double intercept = mean_y - slope * mean_x;
  if (slope < 0.0 || intercept < 0.0) {
    // Too little spread to fit (e.g. only decode steps so far): split the mean time
    // evenly between the fixed cost and the per-token cost.
    slope = 0.5 * mean_y / std::max(1.0, mean_x);
    intercept = 0.5 * mean_y;
  }
  return intercept + slope * tokens;
}

int DraftLengthPolicy::choose(const RowAcceptance& row, int rows_in_pass) const {
  if (!adaptive_ || k_max_ == 0) return k_max_;
  const double alpha = row.alpha();
  const int rows = std::max(1, rows_in_pass);
  int best_k = 0;
  double best_rate = -1.0;
  for (int k = 0; k <= k_max_; ++k) {
    const double seconds = verify_seconds(double(rows) * (k + 1)) + k * draft_step_seconds_;
    const double rate = expected_tokens_per_pass(alpha, k) / seconds;
    if (rate > best_rate) {
      best_rate = rate;
      best_k = k;
    }
  }
  return best_k;
}

}  // namespace so
