// Logits -> token. Transforms apply in the order vLLM and HF use: temperature, top-k,
// top-p, min-p; then one draw. Randomness is counter-based: the uniform for a token is a
// hash of (seed, stream, position), so a row's samples never depend on which other rows
// share its batch, and a run repeats exactly.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace so {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0;

  bool greedy() const { return temperature <= 0.0f; }
  // Checks ranges; the message names the parameter, the value and the valid range.
  Status validate() const;
};

struct TokenProbability {
  int32_t token;
  float probability;
};

// The distribution after the transforms: surviving tokens by descending probability,
// summing to 1. Greedy gives the single argmax token with probability 1.
void sampling_distribution(std::span<const float> logits, const SamplingParams& params,
                           std::vector<TokenProbability>& out);

// Uniform in [0, 1) for (seed, stream, counter).
double sampling_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

// Inverse-CDF draw from a distribution as sampling_distribution returns it.
int32_t sample_from(std::span<const TokenProbability> distribution, double uniform);

// Convenience: argmax when greedy, else transform and draw.
int32_t sample_token(std::span<const float> logits, const SamplingParams& params, uint64_t stream, uint64_t counter,
                     std::vector<TokenProbability>& scratch);

}  // namespace so
