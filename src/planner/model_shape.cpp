#include "planner/model_shape.h"

#include <algorithm>

namespace so {

namespace {

double interpolate(const std::vector<std::pair<int64_t, double>>& points, double x) {
  if (points.empty()) return 0.0;
  if (points.size() == 1) return points[0].second * std::max(1.0, x / double(std::max<int64_t>(1, points[0].first)));
  size_t i = 1;
  while (i + 1 < points.size() && double(points[i].first) < x) ++i;
  const auto [x0, y0] = points[i - 1];
  const auto [x1, y1] = points[i];
  const double slope = (y1 - y0) / double(std::max<int64_t>(1, x1 - x0));
  return std::max(0.0, y0 + slope * (x - double(x0)));
}

}  // namespace

double StepCost::seconds(int64_t tokens, int64_t logit_rows) const {
  // note: a step mostly of prompt tokens costs like a prefill chunk (its few logit rows
  // are small beside it); otherwise like a verification step of that many tokens.
  if (!prefill.empty() && (logit_rows * 2 < tokens || verify.empty())) return interpolate(prefill, double(tokens));
  return interpolate(verify.empty() ? prefill : verify, double(tokens));
}

StepCost StepCost::scaled(double factor) const {
  StepCost cost = *this;
  for (auto* points : {&cost.verify, &cost.prefill}) {
    for (auto& point : *points) point.second *= factor;
  }
  return cost;
}

PassSegments ModelShape::pass_segments() const {
  const std::vector<int64_t> layers(size_t(n_layers), layer_bytes);
  const int64_t row_bytes = head.rows > 0 ? head.bytes / head.rows : 0;
  return so::pass_segments(layers, head.rows, row_bytes, layer_twins);
}

ModelShape ModelShape::first_layers(int n) const {
  ModelShape cut = *this;
  const int kept = std::clamp(n, 0, n_layers);
  cut.kv_bytes_per_token = n_layers > 0 ? kv_bytes_per_token / n_layers * kept : 0;
  if (measured && n_layers > 0) {
    // note: the layers' share of the cost scales with their count; the head's stays.
    const double head_share = double(head.bytes) / double(std::max<int64_t>(1, device_bytes()));
    cut.measured = measured->scaled(head_share + (1.0 - head_share) * double(kept) / n_layers);
  }
  cut.n_layers = kept;
  if (cut.layer_twins.size() > size_t(kept)) cut.layer_twins.resize(size_t(kept));
  cut.name = name + " (first " + std::to_string(kept) + " layers)";
  return cut;
}

}  // namespace so
