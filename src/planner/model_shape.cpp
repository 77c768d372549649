#include "planner/model_shape.h"

#include <algorithm>

namespace so {

ModelShape ModelShape::first_layers(int n) const {
  ModelShape cut = *this;
  const int kept = std::clamp(n, 0, n_layers);
  cut.kv_bytes_per_token = n_layers > 0 ? kv_bytes_per_token / n_layers * kept : 0;
  if (measured && n_layers > 0) {
    // note: the layers' share scales with their count; the head's per-row cost stays.
    const double share = double(kept) / n_layers;
    cut.measured = StepCost{measured->fixed_seconds * share, measured->token_seconds * share, measured->logit_seconds};
  }
  cut.n_layers = kept;
  cut.name = name + " (first " + std::to_string(kept) + " layers)";
  return cut;
}

}  // namespace so
