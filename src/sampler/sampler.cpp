#include "sampler/sampler.h"

#include <algorithm>
#include <cmath>

namespace so {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

bool by_probability(const TokenProbability& a, const TokenProbability& b) {
  return a.probability > b.probability || (a.probability == b.probability && a.token < b.token);
}

}  // namespace

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || temperature > 100.0f) {
    return invalid_argument("temperature ", temperature, " is out of range; expected 0 (greedy) to 100");
  }
  if (top_k < 0) return invalid_argument("top_k ", top_k, " is negative; expected 0 (off) or more");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return invalid_argument("top_p ", top_p, " is out of range; expected (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return invalid_argument("min_p ", min_p, " is out of range; expected [0, 1]");
  return Status::Ok();
}

void sampling_distribution(std::span<const float> logits, const SamplingParams& params,
                           std::vector<TokenProbability>& out) {
  out.clear();
  if (params.greedy()) {
    out.push_back({argmax(logits), 1.0f});
    return;
  }
  const int n = static_cast<int>(logits.size());
  // note: the largest logit comes off before dividing, so a temperature as small as a float
  // goes (1e-45) leaves the best token at 0 and the rest at -inf (greedy in the limit)
  // instead of inf - inf.
  const float max_raw = *std::max_element(logits.begin(), logits.end());
  out.resize(n);
  for (int i = 0; i < n; ++i) out[i] = {i, (logits[i] - max_raw) / params.temperature};

  // top-k: keep the k largest (scaled) logits.
  int kept = n;
  if (params.top_k > 0 && params.top_k < n) {
    std::nth_element(out.begin(), out.begin() + params.top_k, out.end(), by_probability);
    kept = params.top_k;
  }
  out.resize(kept);
  // Softmax over the survivors (logits held in .probability until here).
  float max_logit = -INFINITY;
  for (const auto& candidate : out) max_logit = std::max(max_logit, candidate.probability);
  double sum = 0.0;
  for (auto& candidate : out) {
    candidate.probability = std::exp(candidate.probability - max_logit);
    sum += candidate.probability;
  }
  for (auto& candidate : out) candidate.probability = static_cast<float>(candidate.probability / sum);

  // top-p: the smallest prefix by probability whose mass reaches top_p. Sort only as
  // much of the list as needed: most mass sits in a few tokens.
  if (params.top_p < 1.0f) {
    size_t sorted = std::min<size_t>(64, out.size());
    while (true) {
      std::partial_sort(out.begin(), out.begin() + sorted, out.end(), by_probability);
      double mass = 0.0;
      size_t cut = 0;
      while (cut < sorted && mass < params.top_p) mass += out[cut++].probability;
      if (mass >= params.top_p || sorted == out.size()) {
        out.resize(std::max<size_t>(cut, 1));
        break;
      }
      sorted = std::min(out.size(), sorted * 4);
    }
  } else {
    std::sort(out.begin(), out.end(), by_probability);
  }
  // min-p: drop tokens below min_p times the most likely one.
  if (params.min_p > 0.0f) {
    const float floor = params.min_p * out.front().probability;
    size_t keep = 1;
    while (keep < out.size() && out[keep].probability >= floor) ++keep;
    out.resize(keep);
  }
  double total = 0.0;
  for (const auto& candidate : out) total += candidate.probability;
  for (auto& candidate : out) candidate.probability = static_cast<float>(candidate.probability / total);
}

double sampling_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  const uint64_t bits = splitmix64(seed ^ splitmix64(stream ^ splitmix64(counter + 0x632be59bd9b4e019ull)));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

int32_t sample_from(std::span<const TokenProbability> distribution, double uniform) {
  double cumulative = 0.0;
  for (const auto& candidate : distribution) {
    cumulative += candidate.probability;
    if (uniform < cumulative) return candidate.token;
  }
  return distribution.back().token;  // rounding left uniform above the total
}

int32_t sample_token(std::span<const float> logits, const SamplingParams& params, uint64_t stream, uint64_t counter,
                     std::vector<TokenProbability>& scratch) {
  if (params.greedy()) return argmax(logits);
  sampling_distribution(logits, params, scratch);
  return sample_from(scratch, sampling_uniform(params.seed, stream, counter));
}

}  // namespace so
