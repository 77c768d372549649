// How many tokens to draft per row per pass.
//
// Fixed: every row drafts k_max. Adaptive: the pass's draft lengths k_i in [0, cap_i]
// maximize the expected committed tokens per second of the whole pass,
//     sum_i tau(a_i, k_i) / (t_verify(sum_i (k_i + 1)) + max_i k_i * t_draft)
// where tau(a, k) = (1 - a^(k+1)) / (1 - a) is the expected tokens a row commits at
// per-token acceptance a, t_verify(n) = c0 + c1 * n the target's verification step time
// for n tokens (a least-squares line over recent verification steps), and t_draft the time
// of one draft step. Drafting token j of row i adds a_i^j expected tokens, which shrinks
// with j, so the best set of drafts is a prefix of all (i, j) ordered by a_i^j: the rule
// adds them in that order and keeps the prefix with the best rate.
//
// A row's a is accepted / (accepted + rejections) over its recent passes (the maximum-
// likelihood estimate under the geometric acceptance law), forgetting 0.8 per drafting
// pass, shrunk toward the pooled estimate of all rows with weight 2. A row that drafts
// nothing forgets slowly (0.95 per pass), so it drifts back toward the pool and tries again;
// and every 16th pass each row that would draft nothing drafts one token, so that a cost or
// acceptance measured early and badly gets measured again. An expensive drafter explores
// less often: the period grows with the draft step's cost relative to a verification step
// (16 passes for a free drafter, 16 * (1 + 8 * ratio) otherwise).
//
// Overlapped (interleaved half-batches): the drafter drafts for one half while the target
// verifies the other, so a pass lasts as long as the longer of the two, and the draft
// competes only with the target's compute, not with its waits for streamed weights:
//     sum_i tau(a_i, k_i) / max(t_verify(n), c_verify(n) + max_i k_i * t_draft)
// with c_verify(n) the compute part of a verification step (its wall time minus the
// waits for copies), fitted like t_verify.
#pragma once

#include <cstdint>
#include <span>

#include "planner/cost_model.h"  // expected_tokens_per_pass

namespace so {

struct RowAcceptance {
  double accepted = 0.0;  // decayed count of accepted drafts
  double rejected = 0.0;  // decayed count of passes that ended in a rejection
};

class DraftLengthPolicy {
 public:
  DraftLengthPolicy(int k_max, bool adaptive) : k_max_(k_max), adaptive_(adaptive) {}
  int k_max() const { return k_max_; }
  void set_k_max(int k_max) { k_max_ = k_max; }
  bool adaptive() const { return adaptive_; }
  // Drafting overlaps the other half's verification (see above).
  void set_overlapped(bool overlapped) { overlapped_ = overlapped; }

  // A row's acceptance estimate, shrunk toward the pool.
  double alpha(const RowAcceptance& row) const;
  double pooled_alpha() const;

  // Draft lengths for the rows of one pass: k[i] <= caps[i] (caps[i] <= k_max). Counts
  // passes (for the exploration schedule).
  void choose(std::span<const RowAcceptance* const> rows, std::span<const int> caps, std::span<int> k);
  static constexpr int64_t kExplorePeriod = 16;

  void observe_row(RowAcceptance& row, int drafted, int accepted);
  // A verification step (no prefill riding along) of step_tokens tokens took seconds, of
  // which compute_seconds computing (the rest waiting for streamed weights); < 0: all.
  void observe_step(int64_t step_tokens, double seconds, double compute_seconds = -1.0);
  // One draft step (all drafting rows) took seconds.
  void observe_draft_step(double seconds);

  // The fitted costs, for the stats and tests.
  double verify_seconds(double tokens) const { return wall_.at(tokens); }
  double verify_compute_seconds(double tokens) const { return compute_.at(tokens); }
  double draft_step_seconds() const { return draft_step_seconds_; }

 private:
  // t = c0 + c1 * n by exponentially weighted least squares.
  struct CostLine {
    double s0 = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    void observe(double x, double y);
    double at(double x) const;
  };

  int k_max_;
  bool adaptive_;
  bool overlapped_ = false;
  RowAcceptance pool_;
  int64_t passes_since_exploring_ = 0;
  CostLine wall_, compute_;
  double draft_step_seconds_ = 0.0;
  bool has_draft_sample_ = false;
};

}  // namespace so
