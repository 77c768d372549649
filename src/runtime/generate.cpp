// Engine::generate: continuous batching with optional speculative decoding.
//
// Each iteration: the drafter proposes k tokens for every generating row; one target step
// carries, per generating row, its pending token plus the drafts (k + 1 positions), then
// prefill chunks of newly admitted prompts in the remaining token budget; acceptance keeps
// a prefix of each row's drafts plus one target token, and both KV caches are truncated
// to what was kept. With no drafter (or k = 0) this is plain decoding. A finished row
// frees its slot for the next queued prompt at once; new requests join between passes.
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
  uint64_t handle = 0;  // the feed's
  const GenerationRequest* request = nullptr;
  GenerationResult result;
  int32_t kv_row = 0;
  int32_t prompt_fed = 0;   // prompt tokens already in the KV cache
  int32_t pending = -1;     // emitted, not yet fed (generating rows)
  RowAcceptance acceptance;
  std::string text;  // the generated pieces, kept only to look for stop strings
  bool generating() const { return pending >= 0; }
};

// Engine::generate's feed: a fixed list, results kept in request order.
class ListFeed final : public RequestFeed {
 public:
  ListFeed(std::span<const GenerationRequest> requests, const TokenCallback& on_token, const FinishCallback& on_finish)
      : requests_(requests), results_(requests.size()), on_token_(on_token), on_finish_(on_finish) {}
  bool take(size_t max, bool, std::vector<FedRequest>& out) override {
    if (next_ == requests_.size()) return false;
    for (; max > 0 && next_ < requests_.size(); --max, ++next_) out.push_back({next_, &requests_[next_]});
    return true;
  }
  void on_token(uint64_t handle, int32_t token) override {
    if (on_token_) on_token_(size_t(handle), token);
  }
  void on_finish(uint64_t handle, GenerationResult result) override {
    results_[handle] = std::move(result);
    if (on_finish_) on_finish_(size_t(handle), results_[handle]);
  }
  std::vector<GenerationResult> take_results() { return std::move(results_); }

 private:
  std::span<const GenerationRequest> requests_;
  std::vector<GenerationResult> results_;
  size_t next_ = 0;
  const TokenCallback& on_token_;
  const FinishCallback& on_finish_;
};

}  // namespace

std::vector<GenerationResult> Engine::generate(std::span<const GenerationRequest> requests,
                                               const TokenCallback& on_token, const FinishCallback& on_finish) {
  ListFeed feed(requests, on_token, on_finish);
  serve(feed);
  return feed.take_results();
}

void Engine::serve(RequestFeed& feed) {
  std::vector<ActiveRow> active;
  std::vector<FedRequest> arrived;
  std::vector<float> logits;
  std::vector<DraftQuery> queries;
  std::vector<size_t> query_slots;
  std::vector<Proposal> proposals;
  std::vector<int32_t> row_tokens;
  const int64_t n_vocab = config().n_vocab;
  bool warned_draft_failure = false;

  // A request that ends before it gets a row (invalid, or nothing to generate).
  auto finish_unadmitted = [&](const FedRequest& fed, Status error) {
    GenerationResult result;
    result.finish = error.ok() ? FinishReason::kLength : FinishReason::kError;
    result.error = std::move(error);
    feed.on_finish(fed.handle, std::move(result));
  };
  auto finish = [&](size_t slot, FinishReason reason) {
    ActiveRow& row = active[slot];
    row.result.finish = reason;
    kv_->remove_row(row.kv_row);
    if (drafter_) drafter_->remove_row(row.kv_row);
    feed.on_finish(row.handle, std::move(row.result));
    active.erase(active.begin() + static_cast<std::ptrdiff_t>(slot));
  };

  for (;;) {
    std::vector<std::pair<size_t, FinishReason>> finished;  // (slot, reason)
    // Admission: fill free rows from the feed; block only when nothing is generating.
    bool open = true;
    while (open && static_cast<int>(active.size()) < options_.max_rows) {
      arrived.clear();
      open = feed.take(size_t(options_.max_rows) - active.size(), active.empty(), arrived);
      if (arrived.empty()) break;
      for (const FedRequest& fed : arrived) {
        Status valid = check_generation_request(*fed.request, config().n_ctx_train, n_vocab);
        if (!valid.ok() || fed.request->max_tokens == 0) {
          finish_unadmitted(fed, std::move(valid));
          continue;
        }
        active.push_back({fed.handle, fed.request, {}, kv_->add_row(), 0, -1, {}, {}});
        if (drafter_) {
          Status added = drafter_->add_row(active.back().kv_row, fed.request->prompt_tokens);
          if (!added.ok()) {
            active.back().result.error = added;
            finish(active.size() - 1, FinishReason::kError);
          }
        }
      }
    }
    for (size_t slot = active.size(); slot-- > 0;) {
      if (feed.cancelled(active[slot].handle)) finish(slot, FinishReason::kCancelled);
    }
    if (active.empty()) {
      if (!open) break;
      continue;
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
      const GenerationRequest& request = *row.request;
      const int32_t position = kv_->length(row.kv_row);  // the pending token's
      int64_t cap = drafter_ ? draft_length_->k_max() : 0;
      cap = std::min<int64_t>({cap, request.max_tokens - int64_t(row.result.tokens.size()) - 1,
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
        active[slot].result.error = added;
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
      const auto& prompt = row.request->prompt_tokens;
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
        active[slot].result.error = status;
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
      const GenerationRequest& request = *row.request;
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
        row.result.drafted_tokens += n_drafts;
        row.result.accepted_tokens += verdict.n_accepted;
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
      GenerationResult& result = row.result;
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
        feed.on_token(row.handle, token);
        if (!request.stop.empty()) {
          const size_t searched = row.text.size();
          row.text += tokenizer_->token_to_piece(token);
          const size_t at = find_stop_string(row.text, searched, request.stop);
          if (at != std::string::npos) {
            result.stop_cut_bytes = row.text.size() - at;
            finished.push_back({step_slots[i], FinishReason::kStop});
            done = true;
            break;
          }
        }
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
    feed.on_pass(stats_, active.size());
  }
}

}  // namespace so
