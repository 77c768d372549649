// How many tokens to draft per row per pass.
//
// Fixed: always k_max. Adaptive: each row drafts the k in [0, k_max] that maximizes its
// expected committed tokens per second of pass time,
//     k* = argmax_k  tau(a, k) / (t_verify(B * (k + 1)) + k * t_draft)
// where tau(a, k) = (1 - a^(k+1)) / (1 - a) is the expected tokens per pass at per-token
// acceptance a, B the rows verified in the pass, t_verify(n) = c0 + c1 * n the target
// step time for n tokens (a least-squares line over recent steps, prefill steps included),
// and t_draft the time of one draft step. A row's a is estimated from its recent passes as
// accepted / (accepted + rejections), the maximum-likelihood estimate under the geometric
// acceptance law, with exponential forgetting (per pass, drafting or not) and a weak
// prior, so a row that stopped drafting drifts back to the prior and tries again.
#pragma once

#include <cstdint>

namespace so {

// Expected tokens committed per row per pass.
double expected_tokens_per_pass(double alpha, int k);

struct RowAcceptance {
  double accepted = 0.0;  // decayed count of accepted drafts
  double rejected = 0.0;  // decayed count of passes that ended in a rejection
  double alpha() const;
};

class DraftLengthPolicy {
 public:
  DraftLengthPolicy(int k_max, bool adaptive) : k_max_(k_max), adaptive_(adaptive) {}
  int k_max() const { return k_max_; }
  bool adaptive() const { return adaptive_; }

  int choose(const RowAcceptance& row, int rows_in_pass) const;

  static void observe_row(RowAcceptance& row, int drafted, int accepted);
  // A target step of step_tokens tokens took seconds.
  void observe_step(int64_t step_tokens, double seconds);
  // One draft step (all drafting rows) took seconds.
  void observe_draft_step(double seconds);

  // The fitted costs, for the stats and tests.
  double verify_seconds(double tokens) const;
  double draft_step_seconds() const { return draft_step_seconds_; }

 private:
  int k_max_;
  bool adaptive_;
  // Exponentially weighted sums for the line t = c0 + c1 * n.
  double s0_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
  double draft_step_seconds_ = 0.0;
  bool has_draft_sample_ = false;
};

}  // namespace so
