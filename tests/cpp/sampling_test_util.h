// Helpers shared by the sampler and speculative-acceptance tests.
#pragma once

#include <cmath>
#include <vector>

namespace so::testing {

// Logits whose softmax is the given distribution.
inline std::vector<float> logits_of(const std::vector<double>& probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

}  // namespace so::testing
