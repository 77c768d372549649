// Engine::generate: continuous batching. Each step carries one decode token for every
// generating row, then prefill chunks of newly admitted prompts in the remaining token
// budget; a finished row frees its slot for the next queued prompt at once.
#include <algorithm>
#include <deque>
#include <utility>

#include "runtime/engine.h"

namespace so {
namespace {

struct ActiveRow {
  size_t request = 0;
  int32_t kv_row = 0;
  int32_t prompt_fed = 0;        // prompt tokens already in the KV cache
  int32_t next_token = -1;       // sampled, not yet fed (generating rows)
  bool generating() const { return next_token >= 0; }
};

Status check_request(const GenerationRequest& request, const ModelConfig& config) {
  if (request.prompt_tokens.empty()) return invalid_argument("the prompt is empty; expected at least one token");
  if (static_cast<int64_t>(request.prompt_tokens.size()) >= config.n_ctx_train) {
    return out_of_range("the prompt has ", request.prompt_tokens.size(), " tokens but the model's context is ",
                        config.n_ctx_train, "; shorten the prompt");
  }
  if (request.max_tokens < 0) return invalid_argument("max_tokens ", request.max_tokens, " is negative");
  for (int32_t token : request.prompt_tokens) {
    if (token < 0 || token >= config.n_vocab) {
      return invalid_argument("prompt token id ", token, " is outside the vocabulary [0, ", config.n_vocab, ")");
    }
  }
  return request.sampling.validate();
}

}  // namespace

std::vector<GenerationResult> Engine::generate(std::span<const GenerationRequest> requests,
                                               const TokenCallback& on_token) {
  std::vector<GenerationResult> results(requests.size());
  std::deque<size_t> queue;
  for (size_t i = 0; i < requests.size(); ++i) {
    Status valid = check_request(requests[i], config());
    if (!valid.ok()) {
      results[i].finish = FinishReason::kError;
      results[i].error = valid;
    } else if (requests[i].max_tokens == 0) {
      results[i].finish = FinishReason::kLength;
    } else {
      queue.push_back(i);
    }
  }

  std::vector<ActiveRow> active;
  std::vector<float> logits;
  std::vector<TokenProbability> sampling_scratch;
  const int64_t n_vocab = config().n_vocab;

  auto finish = [&](size_t slot, FinishReason reason) {
    results[active[slot].request].finish = reason;
    kv_->remove_row(active[slot].kv_row);
    active.erase(active.begin() + static_cast<std::ptrdiff_t>(slot));
  };

  while (!queue.empty() || !active.empty()) {
    while (!queue.empty() && static_cast<int>(active.size()) < options_.max_rows) {
      active.push_back({queue.front(), kv_->add_row(), 0, -1});
      queue.pop_front();
    }

    // Build the step: decode tokens first, then prefill chunks. A row the KV budget can't
    // take fails alone.
    StepBuilder step(*kv_);
    std::vector<size_t> step_slots;
    std::vector<std::pair<size_t, FinishReason>> finished;  // (slot, reason)
    auto add_to_step = [&](size_t slot, std::span<const int32_t> tokens, LogitsWanted logits) {
      Status added = step.add_row(active[slot].kv_row, tokens, logits);
      if (added.ok()) {
        step_slots.push_back(slot);
      } else {
        results[active[slot].request].error = added;
        finished.push_back({slot, FinishReason::kError});
      }
      return added.ok();
    };
    int64_t budget = options_.max_step_tokens;
    int64_t prompt_tokens = 0;
    for (size_t slot = 0; slot < active.size() && budget > 0; ++slot) {
      if (!active[slot].generating()) continue;
      if (add_to_step(slot, std::span<const int32_t>(&active[slot].next_token, 1), LogitsWanted::kLast)) --budget;
    }
    for (size_t slot = 0; slot < active.size() && budget > 0; ++slot) {
      ActiveRow& row = active[slot];
      if (row.generating()) continue;
      const auto& prompt = requests[row.request].prompt_tokens;
      const int32_t chunk = static_cast<int32_t>(std::min<int64_t>(budget, int64_t(prompt.size()) - row.prompt_fed));
      const bool ends_prompt = row.prompt_fed + chunk == static_cast<int32_t>(prompt.size());
      if (add_to_step(slot, std::span<const int32_t>(prompt.data() + row.prompt_fed, chunk),
                      ends_prompt ? LogitsWanted::kLast : LogitsWanted::kNone)) {
        budget -= chunk;
        prompt_tokens += chunk;
      }
    }

    // Retired back to front so the remaining slot indices stay valid.
    auto retire_finished = [&] {
      std::sort(finished.begin(), finished.end(), [](auto& a, auto& b) { return a.first > b.first; });
      for (auto [slot, reason] : finished) finish(slot, reason);
    };
    if (step.empty()) {
      retire_finished();
      continue;
    }

    Status status = forward(step, logits, prompt_tokens);
    if (!status.ok()) {
      // A step failure (e.g. KV budget) fails the rows in it; the others go on.
      for (size_t slot : step_slots) {
        results[active[slot].request].error = status;
        finished.push_back({slot, FinishReason::kError});
      }
      retire_finished();
      continue;
    }

    // Sample for every row that produced logits.
    int64_t logit_row = 0;
    const StepInput& input = step.input();
    for (size_t i = 0; i < input.rows.size(); ++i) {
      ActiveRow& row = active[step_slots[i]];
      const GenerationRequest& request = requests[row.request];
      if (row.generating()) {
        row.next_token = -1;
      } else {
        row.prompt_fed += input.rows[i].kv.n_tokens;
        if (input.rows[i].logits == LogitsWanted::kNone) continue;
      }
      GenerationResult& result = results[row.request];
      const int32_t position = kv_->length(row.kv_row);
      const std::span<const float> row_logits(logits.data() + logit_row * n_vocab, n_vocab);
      ++logit_row;
      const int32_t token = sample_token(row_logits, request.sampling, request.stream_id, position, sampling_scratch);
      if (!request.ignore_eos && tokenizer_->is_end_of_generation(token)) {
        finished.push_back({step_slots[i], FinishReason::kStop});
        continue;
      }
      result.tokens.push_back(token);
      if (on_token) on_token(row.request, token);
      // The token just sampled sits at `position`; feeding it needs position < context.
      if (static_cast<int>(result.tokens.size()) >= request.max_tokens || position >= config().n_ctx_train) {
        finished.push_back({step_slots[i], FinishReason::kLength});
        continue;
      }
      row.next_token = token;
    }
    retire_finished();
  }
  return results;
}

}  // namespace so
