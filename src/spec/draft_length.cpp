#include "spec/draft_length.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"

namespace so {
namespace {

constexpr double kRowForgetting = 0.8;    // a row's acceptance follows the text it is in
constexpr double kIdleForgetting = 0.95;  // a row not drafting drifts back slowly
constexpr double kPoolForgetting = 0.97;
constexpr double kCostForgetting = 0.97;  // costs drift slowly
constexpr double kPoolPrior = 0.5;        // before anything is measured
constexpr double kShrinkWeight = 2.0;     // in pseudo-observations

}  // namespace

double DraftLengthPolicy::pooled_alpha() const {
  return (pool_.accepted + kPoolPrior * kShrinkWeight) / (pool_.accepted + pool_.rejected + kShrinkWeight);
}

double DraftLengthPolicy::alpha(const RowAcceptance& row) const {
  return (row.accepted + pooled_alpha() * kShrinkWeight) / (row.accepted + row.rejected + kShrinkWeight);
}

void DraftLengthPolicy::observe_row(RowAcceptance& row, int drafted, int accepted) {
  const double rejected = accepted < drafted ? 1.0 : 0.0;
  const double forget = drafted > 0 ? kRowForgetting : kIdleForgetting;
  row.accepted = forget * row.accepted + accepted;
  row.rejected = forget * row.rejected + rejected;
  if (drafted > 0) {
    pool_.accepted = kPoolForgetting * pool_.accepted + accepted;
    pool_.rejected = kPoolForgetting * pool_.rejected + rejected;
  }
}

void DraftLengthPolicy::CostLine::observe(double x, double y) {
  s0 = kCostForgetting * s0 + 1.0;
  sx = kCostForgetting * sx + x;
  sy = kCostForgetting * sy + y;
  sxx = kCostForgetting * sxx + x * x;
  sxy = kCostForgetting * sxy + x * y;
}

void DraftLengthPolicy::observe_step(int64_t step_tokens, double seconds, double compute_seconds) {
  wall_.observe(double(step_tokens), seconds);
  compute_.observe(double(step_tokens), compute_seconds < 0 ? seconds : compute_seconds);
}

void DraftLengthPolicy::observe_draft_step(double seconds) {
  draft_step_seconds_ = has_draft_sample_ ? 0.8 * draft_step_seconds_ + 0.2 * seconds : seconds;
  has_draft_sample_ = true;
}

double DraftLengthPolicy::CostLine::at(double tokens) const {
  if (s0 <= 0.0) return 1.0 + 0.1 * tokens;  // nothing measured yet: any increasing guess
  const double mean_x = sx / s0, mean_y = sy / s0;
  const double spread = sxx / s0 - mean_x * mean_x;
  double slope = spread > 1e-6 * std::max(1.0, mean_x * mean_x) ? (sxy / s0 - mean_x * mean_y) / spread : -1.0;
  double intercept = mean_y - slope * mean_x;
  if (slope < 0.0 || intercept < 0.0) {
    // Too little spread to fit (e.g. no drafts yet, every step the same size): assume the
    // step is mostly fixed cost, as weight streaming makes it, so drafting gets tried
    // and the fit learns the real slope from the steps it adds.
    slope = 0.2 * mean_y / std::max(1.0, mean_x);
    intercept = 0.8 * mean_y;
  }
  return intercept + slope * tokens;
}

void DraftLengthPolicy::choose(std::span<const RowAcceptance* const> rows, std::span<const int> caps,
                               std::span<int> k) {
  SO_CHECK(rows.size() == caps.size() && rows.size() == k.size(), "one cap and one length per row");
  for (size_t i = 0; i < rows.size(); ++i) k[i] = adaptive_ ? 0 : std::min(k_max_, caps[i]);
  if (!adaptive_ || rows.empty()) return;

  // Candidate drafts (gain a_i^j, row i), best gain first.
  struct Candidate {
    double gain;
    size_t row;
  };
  std::vector<Candidate> candidates;
  for (size_t i = 0; i < rows.size(); ++i) {
    const double a = alpha(*rows[i]);
    double gain = 1.0;
    for (int j = 1; j <= std::min(k_max_, caps[i]); ++j) candidates.push_back({gain *= a, i});
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& x, const Candidate& y) { return x.gain > y.gain; });

  // Rate of each prefix; keep the best.
  std::vector<int> lengths(rows.size(), 0);
  double tokens = double(rows.size());  // every row commits at least its target token
  int64_t verified = static_cast<int64_t>(rows.size());
  int longest = 0;
  double best_rate = tokens / verify_seconds(double(verified));
  size_t best_prefix = 0;
  for (size_t n = 0; n < candidates.size(); ++n) {
    tokens += candidates[n].gain;
    verified += 1;
    longest = std::max(longest, ++lengths[candidates[n].row]);
    const double drafting = longest * draft_step_seconds_;
    const double seconds = overlapped_ ? std::max(verify_seconds(double(verified)),
                                                  verify_compute_seconds(double(verified)) + drafting)
                                       : verify_seconds(double(verified)) + drafting;
    const double rate = tokens / seconds;
    if (rate > best_rate) {
      best_rate = rate;
      best_prefix = n + 1;
    }
  }
  for (size_t n = 0; n < best_prefix; ++n) ++k[candidates[n].row];
  const double cost_ratio = draft_step_seconds_ / verify_seconds(double(rows.size()));
  const int64_t period = kExplorePeriod * (1 + static_cast<int64_t>(8.0 * cost_ratio));
  if (++passes_since_exploring_ >= period) {
    passes_since_exploring_ = 0;
    for (size_t i = 0; i < rows.size(); ++i) k[i] = std::max(k[i], std::min(1, caps[i]));
  }
}

}  // namespace so
