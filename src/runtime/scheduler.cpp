#include "runtime/scheduler.h"

#include <algorithm>
#include <thread>

#include "base/compute_gate.h"
#include "base/log.h"
#include "base/timer.h"
#include "spec/acceptance.h"

namespace so {

Scheduler::Scheduler(Engine& engine, RequestFeed& feed)
    : engine_(engine),
      feed_(feed),
      options_(engine.options_),
      max_rows_(engine.options_.max_rows),
      interleaved_(engine.options_.schedule == Schedule::kInterleaved) {}

void Scheduler::finish(size_t slot, FinishReason reason) {
  ActiveRow& row = active_[slot];
  row.result.finish = reason;
  engine_.kv_->remove_row(row.kv_row);
  if (engine_.drafter_) engine_.drafter_->remove_row(row.kv_row);
  feed_.on_finish(row.handle, std::move(row.result));
  active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(slot));
}

void Scheduler::retire_finished() {
  // Back to front, so the remaining slot indices stay valid.
  std::sort(finished_.begin(), finished_.end(), [](auto& a, auto& b) { return a.first > b.first; });
  finished_.erase(std::unique(finished_.begin(), finished_.end(), [](auto& a, auto& b) { return a.first == b.first; }),
                  finished_.end());
  for (auto [slot, reason] : finished_) finish(slot, reason);
  finished_.clear();
}

bool Scheduler::admit() {
  const ModelConfig& config = engine_.config();
  bool open = true;
  while (open && static_cast<int>(active_.size()) < max_rows_) {
    arrived_.clear();
    open = feed_.take(size_t(max_rows_) - active_.size(), active_.empty(), arrived_);
    if (arrived_.empty()) break;
    for (const FedRequest& fed : arrived_) {
      Status valid = check_generation_request(*fed.request, config.n_ctx_train, config.n_vocab);
      if (!valid.ok() || fed.request->max_tokens == 0) {
        GenerationResult result;
        result.finish = valid.ok() ? FinishReason::kLength : FinishReason::kError;
        result.error = std::move(valid);
        feed_.on_finish(fed.handle, std::move(result));
        continue;
      }
      ActiveRow row;
      row.handle = fed.handle;
      row.request = fed.request;
      row.kv_row = engine_.kv_->add_row();
      active_.push_back(std::move(row));
      if (engine_.drafter_) {
        Status added = engine_.drafter_->add_row(active_.back().kv_row, fed.request->prompt_tokens);
        if (!added.ok()) {
          active_.back().result.error = added;
          finish(active_.size() - 1, FinishReason::kError);
        }
      }
    }
  }
  for (size_t slot = active_.size(); slot-- > 0;) {
    if (feed_.cancelled(active_[slot].handle)) finish(slot, FinishReason::kCancelled);
  }
  return open || !active_.empty();
}

DraftJob Scheduler::plan_drafts(int half) {
  DraftJob job;
  Drafter* drafter = engine_.drafter_.get();
  if (!drafter) return job;
  DraftLengthPolicy& policy = *engine_.draft_length_;
  const ModelConfig& config = engine_.config();
  // Caps: no drafts past the token limit (the pending token is already emitted, and a
  // pass commits up to k + 1), past either model's context, or past the step's budget.
  int64_t budget = options_.max_step_tokens;
  std::vector<const RowAcceptance*> acceptance;
  std::vector<int> caps;
  for (size_t slot = 0; slot < active_.size() && budget > 0; ++slot) {
    const ActiveRow& row = active_[slot];
    if (!row.generating() || !in_half(row, half)) continue;
    budget -= 1;  // its pending token
    if (row.drafted) continue;
    const GenerationRequest& request = *row.request;
    const int32_t position = engine_.kv_->length(row.kv_row);  // the pending token's
    const int64_t cap =
        std::min<int64_t>({policy.k_max(), request.max_tokens - int64_t(row.result.tokens.size()) - 1,
                           config.n_ctx_train - 1 - int64_t(position), drafter->max_positions() - int64_t(position)});
    caps.push_back(static_cast<int>(std::max<int64_t>(cap, 0)));
    acceptance.push_back(&row.acceptance);
    job.queries.push_back({row.kv_row, row.pending, position, 0, &request.sampling, request.stream_id});
    job.slots.push_back(slot);
  }
  if (job.queries.empty()) return job;
  std::vector<int> lengths(job.queries.size());
  policy.choose(acceptance, caps, lengths);
  for (size_t i = 0; i < job.queries.size(); ++i) {
    job.queries[i].k = static_cast<int>(std::min<int64_t>(lengths[i], std::max<int64_t>(budget, 0)));
    budget -= job.queries[i].k;
  }
  // Rows drafting nothing verify their pending token alone; they need no proposal.
  size_t kept = 0;
  for (size_t i = 0; i < job.queries.size(); ++i) {
    if (job.queries[i].k == 0) continue;
    job.queries[kept] = job.queries[i];
    job.slots[kept++] = job.slots[i];
  }
  job.queries.resize(kept);
  job.slots.resize(kept);
  return job;
}

void Scheduler::propose(DraftJob& job) const {
  job.proposals.assign(job.queries.size(), {});
  if (job.empty()) return;
  Drafter& drafter = *engine_.drafter_;
  job.start_seconds = now_seconds();
  const double catch_up_before = drafter.catch_up_seconds();
  const int64_t fed_before = drafter.fed_tokens();
  // Sub-batches of the plan's size bound the drafter's activations at large batches.
  const size_t subbatch = options_.spec.draft_subbatch > 0 ? size_t(options_.spec.draft_subbatch) : job.queries.size();
  std::vector<Proposal> part;
  for (size_t first = 0; first < job.queries.size() && job.status.ok(); first += subbatch) {
    const size_t count = std::min(subbatch, job.queries.size() - first);
    job.status = drafter.propose(std::span(job.queries).subspan(first, count), part);
    std::move(part.begin(), part.end(), job.proposals.begin() + std::ptrdiff_t(first));
  }
  job.seconds = now_seconds() - job.start_seconds;
  job.catch_up_seconds = drafter.catch_up_seconds() - catch_up_before;
  job.fed_tokens = drafter.fed_tokens() - fed_before;
}

void Scheduler::finish_drafts(DraftJob& job) {
  if (job.empty()) return;
  engine_.stats_.draft_seconds += job.seconds;
  engine_.stats_.draft_catch_up_seconds += job.catch_up_seconds;
  engine_.stats_.draft_fed_tokens += job.fed_tokens;
  engine_.pass_log_->current().draft_seconds += job.seconds;
  engine_.pass_log_->add_span(TraceTrack::kDraft, "draft", job.start_seconds, job.start_seconds + job.seconds);
  if (!job.status.ok()) {
    // Decoding goes on without drafts; the failure is the drafter's, not the rows'.
    if (!warned_draft_failure_) SO_LOG(Warn, "drafting failed, decoding without drafts: ", job.status.to_string());
    warned_draft_failure_ = true;
    return;
  }
  int max_k = 0;
  for (const DraftQuery& query : job.queries) max_k = std::max(max_k, query.k);
  engine_.draft_length_->observe_draft_step((job.seconds - job.catch_up_seconds) / max_k);
  for (size_t i = 0; i < job.queries.size(); ++i) {
    ActiveRow& row = active_[job.slots[i]];
    row.drafts = std::move(job.proposals[i]);
    row.drafted = true;
  }
}

void Scheduler::verify(int half) {
  Engine& e = engine_;
  // Verification rows first, then prefill chunks. A row the KV budget can't take fails alone.
  StepBuilder step(*e.kv_);
  std::vector<size_t> step_slots;
  auto add_to_step = [&](size_t slot, std::span<const int32_t> tokens, LogitsWanted wanted) {
    Status added = step.add_row(active_[slot].kv_row, tokens, wanted);
    if (added.ok()) {
      step_slots.push_back(slot);
    } else {
      active_[slot].result.error = added;
      finished_.push_back({slot, FinishReason::kError});
    }
    return added.ok();
  };
  int64_t budget = options_.max_step_tokens;
  for (size_t slot = 0; slot < active_.size(); ++slot) {
    ActiveRow& row = active_[slot];
    if (!row.generating() || !in_half(row, half)) continue;
    const int64_t n_drafts = row.drafted ? int64_t(row.drafts.tokens.size()) : 0;
    if (1 + n_drafts > budget) continue;  // its turn comes in a later pass
    row_tokens_.assign(1, row.pending);
    if (row.drafted) row_tokens_.insert(row_tokens_.end(), row.drafts.tokens.begin(), row.drafts.tokens.end());
    if (add_to_step(slot, row_tokens_, n_drafts > 0 ? LogitsWanted::kAll : LogitsWanted::kLast)) {
      budget -= 1 + n_drafts;
    }
  }
  int64_t prompt_tokens = 0;
  for (size_t slot = 0; slot < active_.size() && budget > 0; ++slot) {
    ActiveRow& row = active_[slot];
    if (row.generating()) continue;
    const auto& prompt = row.request->prompt_tokens;
    const int32_t chunk = static_cast<int32_t>(std::min<int64_t>(budget, int64_t(prompt.size()) - row.prompt_fed));
    const bool ends_prompt = row.prompt_fed + chunk == static_cast<int32_t>(prompt.size());
    if (add_to_step(slot, std::span<const int32_t>(prompt.data() + row.prompt_fed, chunk),
                    ends_prompt ? LogitsWanted::kLast : LogitsWanted::kNone)) {
      budget -= chunk;
      prompt_tokens += chunk;
    }
  }
  if (step.empty()) return;

  // Row starts before the step: acceptance truncates to what each row keeps.
  std::vector<int32_t> kv_before(step_slots.size());
  for (size_t i = 0; i < step_slots.size(); ++i) kv_before[i] = e.kv_->length(active_[step_slots[i]].kv_row);
  Stopwatch step_watch;
  Status status = e.forward(step, logits_, prompt_tokens);
  PassRecord& pass = e.pass_log_->current();
  pass.rows += static_cast<int>(step_slots.size());
  pass.prefill_tokens += prompt_tokens;
  pass.verify_tokens += int64_t(step.input().tokens.size()) - prompt_tokens;
  pass.compute_seconds += e.last_forward_.seconds - e.last_forward_.copy_wait_seconds;
  pass.copy_wait_seconds += e.last_forward_.copy_wait_seconds;
  pass.host_attention_seconds += e.last_forward_.host_attention_seconds;
  pass.activation_transfer_seconds += e.last_forward_.activation_transfer_seconds;
  pass.streamed_bytes += e.last_forward_.streamed_bytes;
  if (!status.ok()) {
    // A step failure (e.g. KV budget) fails the rows in it; the others go on.
    for (size_t slot : step_slots) {
      active_[slot].result.error = status;
      finished_.push_back({slot, FinishReason::kError});
    }
    return;
  }
  if (prompt_tokens == 0) {
    e.draft_length_->observe_step(int64_t(step.input().tokens.size()), step_watch.elapsed_seconds(),
                                  e.last_forward_.seconds - e.last_forward_.copy_wait_seconds);
  }
  accept(step.input(), step_slots, kv_before);
}

void Scheduler::accept(const StepInput& input, const std::vector<size_t>& step_slots,
                       const std::vector<int32_t>& kv_before) {
  Engine& e = engine_;
  const int64_t n_vocab = e.config().n_vocab;
  PassRecord& pass = e.pass_log_->current();
  int64_t logit_row = 0;
  for (size_t i = 0; i < input.rows.size(); ++i) {
    ActiveRow& row = active_[step_slots[i]];
    const GenerationRequest& request = *row.request;
    const bool was_generating = row.generating();
    if (!was_generating) {
      row.prompt_fed += input.rows[i].kv.n_tokens;
      if (input.rows[i].logits == LogitsWanted::kNone) continue;
    }
    const Proposal none;
    const Proposal& proposal = was_generating && row.drafted ? row.drafts : none;
    const std::span<const int32_t> drafts = proposal.tokens;
    const int n_drafts = static_cast<int>(drafts.size());
    const int64_t first_position = e.kv_->length(row.kv_row) - n_drafts;  // where drafts[0] (or the new token) goes
    const std::span<const float> row_logits(logits_.data() + logit_row * n_vocab, size_t(n_drafts + 1) * n_vocab);
    logit_row += n_drafts + 1;
    const double alpha = options_.spec.simulate_alpha;
    const Verdict verdict = alpha >= 0 && n_drafts > 0
                                ? verify_simulated(row_logits, n_drafts, n_vocab, alpha, request.sampling.seed,
                                                   request.stream_id, first_position)
                                : verify_sampled(drafts, proposal.q, row_logits, n_vocab, request.sampling,
                                                 request.stream_id, first_position);

    if (was_generating) {
      e.stats_.record_verification(n_drafts, verdict.n_accepted);
      pass.drafted += n_drafts;
      pass.accepted += verdict.n_accepted;
      pass.committed += verdict.n_accepted + 1;
      row.result.drafted_tokens += n_drafts;
      row.result.accepted_tokens += verdict.n_accepted;
      e.stats_.decode_tokens += verdict.n_accepted + 1;
      e.draft_length_->observe_row(row.acceptance, n_drafts, verdict.n_accepted);
      e.kv_->truncate(row.kv_row, kv_before[i] + 1 + verdict.n_accepted);
      if (e.drafter_) {
        row_tokens_.assign(1, row.pending);
        row_tokens_.insert(row_tokens_.end(), drafts.begin(), drafts.begin() + verdict.n_accepted);
        e.drafter_->commit(row.kv_row, row_tokens_);
      }
      row.pending = -1;
    }

    // Emit the accepted drafts and the target's token, stopping at end of generation, a
    // stop string, the token limit or the context.
    GenerationResult& result = row.result;
    bool done = false;
    for (int j = 0; j <= verdict.n_accepted && !done; ++j) {
      const int32_t token = j < verdict.n_accepted ? drafts[j] : verdict.next_token;
      const int64_t position = first_position + j;
      if (!request.ignore_eos && e.tokenizer_->is_end_of_generation(token)) {
        finished_.push_back({step_slots[i], FinishReason::kStop});
        done = true;
        break;
      }
      result.tokens.push_back(token);
      feed_.on_token(row.handle, token);
      if (!request.stop.empty()) {
        const size_t searched = row.text.size();
        row.text += e.tokenizer_->token_to_piece(token);
        const size_t at = find_stop_string(row.text, searched, request.stop);
        if (at != std::string::npos) {
          result.stop_cut_bytes = row.text.size() - at;
          finished_.push_back({step_slots[i], FinishReason::kStop});
          done = true;
          break;
        }
      }
      // Feeding the token needs position < context.
      if (static_cast<int>(result.tokens.size()) >= request.max_tokens || position >= e.config().n_ctx_train) {
        finished_.push_back({step_slots[i], FinishReason::kLength});
        done = true;
      }
    }
    row.drafted = false;
    row.drafts = {};
    if (!done) row.pending = verdict.next_token;
  }
}

void Scheduler::balance_halves() {
  int count[2] = {0, 0};
  for (const ActiveRow& row : active_) {
    if (row.generating()) count[row.half] += 1;
  }
  // Rows holding drafts stay where they are: their drafts are for their own half's turn.
  for (ActiveRow& row : active_) {
    const int other = 1 - row.half;
    if (!row.generating() || row.drafted || count[row.half] <= count[other] + 1) continue;
    count[row.half] -= 1;
    count[other] += 1;
    row.half = other;
  }
}

void Scheduler::end_pass(bool ran) {
  Engine& e = engine_;
  if (!ran) {
    e.pass_log_->discard_pass();
  } else {
    e.pass_log_->end_pass();
    SO_LOG(Info, pass_line(e.pass_log_->records().back()));
    e.stats_.passes += 1;
    e.stats_.pass_seconds += e.pass_log_->records().back().seconds();
  }
  retire_finished();
  feed_.on_pass(e.stats_, active_.size());
  if (!e.replanner_ || !ran) return;
  const std::optional<Replan> replan = e.replanner_->observe(e.stats_.passes, e.stats_.drafted_tokens,
                                                             e.stats_.accepted_tokens);
  if (!replan) return;
  const Plan& plan = replan->plan;
  // note: rows already admitted beyond a smaller count finish where they are.
  max_rows_ = plan.rows;
  interleaved_ = plan.interleaved && e.drafter_ && e.backend_->concurrent_ops();
  e.draft_length_->set_k_max(plan.draft_length);
  e.draft_length_->set_overlapped(interleaved_);
  e.stats_.replans.push_back({replan->pass, replan->measured_alpha, plan.rows, plan.draft_length, interleaved_});
  SO_LOG(Info, "re-planned after pass ", replan->pass, ": measured alpha ", format_double(replan->measured_alpha, 2),
         ", now ", plan.rows, " rows, k ", plan.draft_length, ", ", interleaved_ ? "interleaved" : "serial");
}

void Scheduler::serial_pass() {
  engine_.pass_log_->begin_pass();
  DraftJob drafts = plan_drafts(/*half=*/-1);
  propose(drafts);
  finish_drafts(drafts);
  verify(/*half=*/-1);
  end_pass(engine_.pass_log_->current().rows > 0);
}

void Scheduler::interleaved_pass() {
  // Rows that started generating in the last pass join the smaller half.
  balance_halves();
  engine_.pass_log_->begin_pass();
  DraftJob drafts = plan_drafts(1 - verifying_);
  std::thread drafter;
  if (!drafts.empty()) {
    drafter = std::thread([this, &drafts] {
      ComputeGate::LowPriorityScope low;
      propose(drafts);
    });
  }
  const double verify_start = now_seconds();
  verify(verifying_);
  const double verify_end = now_seconds();
  if (drafter.joinable()) drafter.join();
  finish_drafts(drafts);
  if (!drafts.empty()) {
    const double beside =
        std::min(verify_end, drafts.start_seconds + drafts.seconds) - std::max(verify_start, drafts.start_seconds);
    engine_.stats_.draft_hidden_seconds += std::max(0.0, beside);
  }
  verifying_ = 1 - verifying_;
  end_pass(engine_.pass_log_->current().rows > 0 || !drafts.empty());
}

void Scheduler::run() {
  while (admit()) {
    if (active_.empty()) continue;
    if (interleaved_) {
      interleaved_pass();
    } else {
      serial_pass();
    }
  }
}

}  // namespace so
