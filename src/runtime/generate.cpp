// Engine::generate: continuous batching with optional speculative decoding.
//
// Each iteration: the drafter proposes k tokens for every generating row; one target step
// carries, per generating row, its pending token plus the drafts (k + 1 positions), then
// prefill chunks of newly admitted prompts in the remaining token budget; acceptance keeps
// a prefix of each row's drafts plus one target token, and both KV caches are truncated
// to what was kept. With no drafter (or k = 0) this is plain decoding. A finished row
// frees its slot for the next queued prompt at once.
#include <algorithm>
#include <deque>
#include <utility>

#include "base/log.h"
#include "base/timer.h"
#include "runtime/engine.h"
#include "spec/acceptance.h"

namespace so {
namespace {

struct ActiveRow {
  size_t request = 0;
  int32_t kv_row = 0;
  int32_t prompt_fed = 0;   // prompt tokens already in the KV cache
  int32_t pending = -1;     // emitted, not yet fed (generating rows)
  RowAcceptance acceptance;
  bool generating() const { return pending >= 0; }
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
                                               const TokenCallback& on_token, const FinishCallback& on_finish) {
  std::vector<GenerationResult> results(requests.size());
  std::deque<size_t> queue;
  for (size_t i = 0; i < requests.size(); ++i) {
    Status valid = check_request(requests[i], config());
    if (!valid.ok()) {
      results[i].finish = FinishReason::kError;
      results[i].error = valid;
      if (on_finish) on_finish(i, results[i]);
    } else if (requests[i].max_tokens == 0) {
      results[i].finish = FinishReason::kLength;
      if (on_finish) on_finish(i, results[i]);
    } else {
      queue.push_back(i);
    }
  }

  std::vector<ActiveRow> active;
  std::vector<float> logits;
  std::vector<DraftQuery> queries;
  std::vector<size_t> query_slots;
  std::vector<Proposal> proposals;
  std::vector<int32_t> row_tokens;
  const int64_t n_vocab = config().n_vocab;
  bool warned_draft_failure = false;

  auto finish = [&](size_t slot, FinishReason reason) {
    results[active[slot].request].finish = reason;
    if (on_finish) on_finish(active[slot].request, results[active[slot].request]);
    kv_->remove_row(active[slot].kv_row);
    if (drafter_) drafter_->remove_row(active[slot].kv_row);
    active.erase(active.begin() + static_cast<std::ptrdiff_t>(slot));
  };

  while (!queue.empty() || !active.empty()) {
    std::vector<std::pair<size_t, FinishReason>> finished;  // (slot, reason)
    while (!queue.empty() && static_cast<int>(active.size()) < options_.max_rows) {
      const size_t request = queue.front();
      queue.pop_front();
      active.push_back({request, kv_->add_row(), 0, -1, {}});
      if (drafter_) {
        Status added = drafter_->add_row(active.back().kv_row, requests[request].prompt_tokens);
        if (!added.ok()) {
          results[request].error = added;
          finish(active.size() - 1, FinishReason::kError);
        }
      }
    }

    pass_log_->begin_pass();

    // Draft for the generating rows that fit the step's token budget. Caps: no drafts past
    // the token limit (the pending token is already emitted, and a pass commits up to
    // k + 1), past either model's context, or past the budget.
    int64_t budget = options_.max_step_tokens;
    queries.clear();
    query_slots.clear();
    std::vector<const RowAcceptance*> row_acceptance;
    std::vector<int> caps;
    for (size_t slot = 0; slot < active.size() && budget > 0; ++slot) {
      const ActiveRow& row = active[slot];
      if (!row.generating()) continue;
      const GenerationRequest& request = requests[row.request];
      const int32_t position = kv_->length(row.kv_row);  // the pending token's
      int64_t cap = drafter_ ? draft_length_->k_max() : 0;
      cap = std::min<int64_t>({cap, request.max_tokens - int64_t(results[row.request].tokens.size()) - 1,
                               config().n_ctx_train - 1 - int64_t(position)});
      if (drafter_) cap = std::min<int64_t>(cap, drafter_->max_positions() - int64_t(position));
      caps.push_back(static_cast<int>(std::max<int64_t>(cap, 0)));
      row_acceptance.push_back(&row.acceptance);
      queries.push_back({row.kv_row, row.pending, position, 0, &request.sampling, request.stream_id});
      query_slots.push_back(slot);
      budget -= 1;
    }
    if (drafter_ && !queries.empty()) {
      std::vector<int> lengths(queries.size());
      draft_length_->choose(row_acceptance, caps, lengths);
      for (size_t i = 0; i < queries.size(); ++i) {
        queries[i].k = static_cast<int>(std::min<int64_t>(lengths[i], std::max<int64_t>(budget, 0)));
        budget -= queries[i].k;
      }
    }
    proposals.assign(queries.size(), {});
    const bool any_draft = std::any_of(queries.begin(), queries.end(), [](const DraftQuery& q) { return q.k > 0; });
    if (drafter_ && any_draft) {
      const double draft_start = now_seconds();
      const double catch_up_before = drafter_->catch_up_seconds();
      Status drafted = drafter_->propose(queries, proposals);
      const double seconds = now_seconds() - draft_start;
      stats_.draft_seconds += seconds;
      pass_log_->current().draft_seconds += seconds;
      pass_log_->add_span(TraceTrack::kDraft, "draft", draft_start, draft_start + seconds);
      if (!drafted.ok()) {
        // Decoding goes on without drafts; the failure is the drafter's, not the rows'.
        if (!warned_draft_failure) SO_LOG(Warn, "drafting failed, decoding without drafts: ", drafted.to_string());
        warned_draft_failure = true;
        proposals.assign(queries.size(), {});
      } else {
        int max_k = 0;
        for (const DraftQuery& query : queries) max_k = std::max(max_k, query.k);
        draft_length_->observe_draft_step((seconds - (drafter_->catch_up_seconds() - catch_up_before)) / max_k);
      }
    }

    // Build the step: verification rows first, then prefill chunks. A row the KV budget
    // can't take fails alone.
    StepBuilder step(*kv_);
    std::vector<size_t> step_slots;
    std::vector<int> step_queries;  // per step row: its draft query, or -1 for prefill
    auto add_to_step = [&](size_t slot, std::span<const int32_t> tokens, LogitsWanted wanted, int query) {
      Status added = step.add_row(active[slot].kv_row, tokens, wanted);
      if (added.ok()) {
        step_slots.push_back(slot);
        step_queries.push_back(query);
      } else {
        results[active[slot].request].error = added;
        finished.push_back({slot, FinishReason::kError});
      }
      return added.ok();
    };
    for (size_t i = 0; i < queries.size(); ++i) {
      const std::vector<int32_t>& drafts = proposals[i].tokens;
      row_tokens.assign(1, queries[i].pending_token);
      row_tokens.insert(row_tokens.end(), drafts.begin(), drafts.end());
      add_to_step(query_slots[i], row_tokens, drafts.empty() ? LogitsWanted::kLast : LogitsWanted::kAll,
                  static_cast<int>(i));
    }
    budget = options_.max_step_tokens - int64_t(step.input().tokens.size());
    int64_t prompt_tokens = 0;
    for (size_t slot = 0; slot < active.size() && budget > 0; ++slot) {
      ActiveRow& row = active[slot];
      if (row.generating()) continue;
      const auto& prompt = requests[row.request].prompt_tokens;
      const int32_t chunk = static_cast<int32_t>(std::min<int64_t>(budget, int64_t(prompt.size()) - row.prompt_fed));
      const bool ends_prompt = row.prompt_fed + chunk == static_cast<int32_t>(prompt.size());
      if (add_to_step(slot, std::span<const int32_t>(prompt.data() + row.prompt_fed, chunk),
                      ends_prompt ? LogitsWanted::kLast : LogitsWanted::kNone, -1)) {
        budget -= chunk;
        prompt_tokens += chunk;
      }
    }

    // Retired back to front so the remaining slot indices stay valid.
    auto retire_finished = [&] {
      std::sort(finished.begin(), finished.end(), [](auto& a, auto& b) { return a.first > b.first; });
      finished.erase(std::unique(finished.begin(), finished.end(),
                                 [](auto& a, auto& b) { return a.first == b.first; }),
                     finished.end());
      for (auto [slot, reason] : finished) finish(slot, reason);
    };
    if (step.empty()) {
      pass_log_->discard_pass();
      retire_finished();
      continue;
    }

    // Row starts before the step: acceptance truncates to what each row keeps.
    std::vector<int32_t> kv_before(step_slots.size());
    for (size_t i = 0; i < step_slots.size(); ++i) kv_before[i] = kv_->length(active[step_slots[i]].kv_row);
    Stopwatch step_watch;
    Status status = forward(step, logits, prompt_tokens);
    PassRecord& pass = pass_log_->current();
    pass.rows = static_cast<int>(step_slots.size());
    pass.prefill_tokens = prompt_tokens;
    pass.verify_tokens = int64_t(step.input().tokens.size()) - prompt_tokens;
    pass.compute_seconds = last_forward_.seconds - last_forward_.copy_wait_seconds;
    pass.copy_wait_seconds = last_forward_.copy_wait_seconds;
    pass.streamed_bytes = last_forward_.streamed_bytes;
    if (!status.ok()) {
      pass_log_->end_pass();
      // A step failure (e.g. KV budget) fails the rows in it; the others go on.
      for (size_t slot : step_slots) {
        results[active[slot].request].error = status;
        finished.push_back({slot, FinishReason::kError});
      }
      retire_finished();
      continue;
    }
    if (prompt_tokens == 0) draft_length_->observe_step(int64_t(step.input().tokens.size()), step_watch.elapsed_seconds());

    // Accept, emit, truncate.
    int64_t logit_row = 0;
    const StepInput& input = step.input();
    for (size_t i = 0; i < input.rows.size(); ++i) {
      ActiveRow& row = active[step_slots[i]];
      const GenerationRequest& request = requests[row.request];
      const bool was_generating = row.generating();
      if (!was_generating) {
        row.prompt_fed += input.rows[i].kv.n_tokens;
        if (input.rows[i].logits == LogitsWanted::kNone) continue;
      }
      const Proposal none;
      const Proposal& proposal = step_queries[i] >= 0 ? proposals[step_queries[i]] : none;
      const std::span<const int32_t> drafts = proposal.tokens;
      const std::span<const std::vector<TokenProbability>> q = proposal.q;
      const int n_drafts = static_cast<int>(drafts.size());
      const int64_t first_position = kv_->length(row.kv_row) - n_drafts;  // where drafts[0] (or the new token) goes
      const std::span<const float> row_logits(logits.data() + logit_row * n_vocab, size_t(n_drafts + 1) * n_vocab);
      logit_row += n_drafts + 1;
      const double alpha = options_.spec.simulate_alpha;
      const Verdict verdict =
          alpha >= 0 && n_drafts > 0
              ? verify_simulated(row_logits, n_drafts, n_vocab, alpha, request.sampling.seed, request.stream_id,
                                 first_position)
              : verify_sampled(drafts, q, row_logits, n_vocab, request.sampling, request.stream_id, first_position);

      if (was_generating) {
        stats_.record_verification(n_drafts, verdict.n_accepted);
        pass.drafted += n_drafts;
        pass.accepted += verdict.n_accepted;
        pass.committed += verdict.n_accepted + 1;
        results[row.request].drafted_tokens += n_drafts;
        results[row.request].accepted_tokens += verdict.n_accepted;
        stats_.decode_tokens += verdict.n_accepted + 1;
        draft_length_->observe_row(row.acceptance, n_drafts, verdict.n_accepted);
        kv_->truncate(row.kv_row, kv_before[i] + 1 + verdict.n_accepted);
        if (drafter_) {
          row_tokens.assign(1, row.pending);
          row_tokens.insert(row_tokens.end(), drafts.begin(), drafts.begin() + verdict.n_accepted);
          drafter_->commit(row.kv_row, row_tokens);
        }
        row.pending = -1;
      }

      // Emit the accepted drafts and the target's token, stopping at end of generation,
      // the token limit or the context.
      GenerationResult& result = results[row.request];
      bool done = false;
      for (int j = 0; j <= verdict.n_accepted && !done; ++j) {
        const int32_t token = j < verdict.n_accepted ? drafts[j] : verdict.next_token;
        const int64_t position = first_position + j;
        if (!request.ignore_eos && tokenizer_->is_end_of_generation(token)) {
          finished.push_back({step_slots[i], FinishReason::kStop});
          done = true;
          break;
        }
        result.tokens.push_back(token);
        if (on_token) on_token(row.request, token);
        // Feeding the token needs position < context.
        if (static_cast<int>(result.tokens.size()) >= request.max_tokens || position >= config().n_ctx_train) {
          finished.push_back({step_slots[i], FinishReason::kLength});
          done = true;
        }
      }
      if (!done) row.pending = verdict.next_token;
    }
    pass_log_->end_pass();
    stats_.passes += 1;
    stats_.pass_seconds += pass.seconds();
    retire_finished();
  }
  return results;
}

}  // namespace so
