#include "spec/model_drafter.h"

#include <algorithm>

#include "base/timer.h"
#include "spec/acceptance.h"

namespace so {

ModelDrafter::ModelDrafter(const Model& model, Backend& backend, const ModelDrafterOptions& options)
    : model_(model), options_(options) {
  const int n_layers = options.n_layers < 0 ? model.config.n_layers : options.n_layers;
  name_ = options.n_layers < 0 ? "draft-model" : str_cat("self-draft-", n_layers, "-layers");
  kv_ = std::make_unique<KvCache>(backend, kv_geometry_for(model.config, options.kv_page_tokens, n_layers),
                                  options.kv_budget_bytes);
  runner_ = std::make_unique<ModelRunner>(model, backend, n_layers);
}

ModelDrafter::~ModelDrafter() = default;

void ModelDrafter::set_layer_source(std::unique_ptr<LayerSource> source) {
  layer_source_ = std::move(source);
  runner_->set_layer_source(layer_source_.get());
}

ModelDrafter::Row& ModelDrafter::row_of(int64_t row) {
  auto found = rows_.find(row);
  SO_CHECK(found != rows_.end(), "unknown draft row ", row);
  return found->second;
}

Status ModelDrafter::add_row(int64_t row, std::span<const int32_t> prompt) {
  SO_CHECK(!rows_.contains(row), "draft row ", row, " added twice");
  Row& entry = rows_[row];
  entry.kv_row = kv_->add_row();
  const size_t skipped = options_.context_tokens > 0 && prompt.size() > size_t(options_.context_tokens)
                             ? prompt.size() - size_t(options_.context_tokens)
                             : 0;
  entry.history.assign(prompt.begin() + ptrdiff_t(skipped), prompt.end());
  return Status::Ok();
}

void ModelDrafter::remove_row(int64_t row) {
  auto found = rows_.find(row);
  if (found == rows_.end()) return;
  kv_->remove_row(found->second.kv_row);
  rows_.erase(found);
}

void ModelDrafter::commit(int64_t row, std::span<const int32_t> committed) {
  Row& entry = row_of(row);
  entry.history.insert(entry.history.end(), committed.begin(), committed.end());
  // Keep the KV positions whose tokens match the new history; drafts past the first
  // rejected one are dropped by a length change.
  const size_t common = static_cast<size_t>(
      std::mismatch(entry.kv_tokens.begin(), entry.kv_tokens.end(), entry.history.begin(), entry.history.end()).first -
      entry.kv_tokens.begin());
  entry.kv_tokens.resize(common);
  kv_->truncate(entry.kv_row, static_cast<int32_t>(common));
}

Status ModelDrafter::run_step(StepBuilder& step, std::vector<float>& logits) {
  const int64_t n_vocab = model_.config.n_vocab;
  const size_t bytes = size_t(step.input().n_logit_rows()) * n_vocab * sizeof(float);
  if (logits_buffer_.bytes() < bytes) {
    SO_ASSIGN_OR_RETURN(logits_buffer_, runner_->backend().allocate(bytes, MemoryKind::kDevice));
  }
  SO_TRY(runner_->forward(step.input(), kv_->geometry(), logits_buffer_.as<float>()));
  step.commit();
  logits.resize(bytes / sizeof(float));
  if (bytes > 0) runner_->backend().copy_to_host(logits.data(), logits_buffer_.data(), bytes);
  return Status::Ok();
}

Status ModelDrafter::catch_up(std::span<const DraftQuery> queries) {
  Stopwatch watch;
  std::vector<float> unused;
  while (true) {
    // Each row may feed its backlog except the last token, which the first draft step feeds.
    StepBuilder step(*kv_);
    int64_t budget = options_.max_step_tokens;
    int64_t total_backlog = 0;
    for (const DraftQuery& query : queries) {
      if (query.k > 0) total_backlog += int64_t(row_of(query.row).history.size()) + 1 - row_of(query.row).kv_tokens.size();
    }
    if (total_backlog <= budget) break;  // the first draft step takes it all
    for (const DraftQuery& query : queries) {
      if (query.k <= 0 || budget <= 0) continue;
      Row& row = row_of(query.row);
      const int64_t backlog = int64_t(row.history.size()) - int64_t(row.kv_tokens.size());  // excludes pending
      const int32_t chunk = static_cast<int32_t>(std::min(backlog, budget));
      if (chunk <= 0) continue;
      const std::span<const int32_t> tokens(row.history.data() + row.kv_tokens.size(), chunk);
      SO_TRY(step.add_row(row.kv_row, tokens, LogitsWanted::kNone));
      fed_tokens_ += int64_t(tokens.size());
      row.kv_tokens.insert(row.kv_tokens.end(), tokens.begin(), tokens.end());
      budget -= chunk;
    }
    if (step.empty()) break;
    SO_TRY(run_step(step, unused));
  }
  catch_up_seconds_ += watch.elapsed_seconds();
  return Status::Ok();
}

Status ModelDrafter::propose(std::span<const DraftQuery> queries, std::vector<Proposal>& proposals) {
  Status status = draft(queries, proposals);
  if (!status.ok()) {
    // A failed step wrote nothing the KV keeps: forget the tokens it was to hold.
    for (auto& [id, row] : rows_) row.kv_tokens.resize(kv_->length(row.kv_row));
    proposals.assign(queries.size(), {});
  }
  return status;
}

Status ModelDrafter::draft(std::span<const DraftQuery> queries, std::vector<Proposal>& proposals) {
  proposals.assign(queries.size(), {});
  SO_TRY(catch_up(queries));
  const int64_t n_vocab = model_.config.n_vocab;
  int max_k = 0;
  for (const DraftQuery& query : queries) max_k = std::max(max_k, query.k);

  std::vector<float> logits;
  std::vector<int32_t> feed;
  for (int step_index = 0; step_index < max_k; ++step_index) {
    StepBuilder step(*kv_);
    std::vector<size_t> in_step;
    int64_t backlog_tokens = 0;  // step 0 also feeds what the rows committed since their last draft
    const Stopwatch step_watch;
    for (size_t i = 0; i < queries.size(); ++i) {
      const DraftQuery& query = queries[i];
      if (query.k <= step_index) continue;
      Row& row = row_of(query.row);
      feed.clear();
      if (step_index == 0) {
        // The rest of the backlog, then the pending token.
        feed.assign(row.history.begin() + row.kv_tokens.size(), row.history.end());
        backlog_tokens += int64_t(feed.size());
        feed.push_back(query.pending_token);
      } else {
        feed.push_back(proposals[i].tokens.back());
      }
      SO_TRY(step.add_row(row.kv_row, feed, LogitsWanted::kLast));
      fed_tokens_ += int64_t(feed.size());
      row.kv_tokens.insert(row.kv_tokens.end(), feed.begin(), feed.end());
      in_step.push_back(i);
    }
    SO_TRY(run_step(step, logits));
    if (backlog_tokens > 0) {
      // note: the backlog's share of the step is catch-up, not the cost of drafting, so the
      // draft-length rule sees what one more draft step costs (a prompt fed here can be 100x).
      const double share = double(backlog_tokens) / double(backlog_tokens + int64_t(in_step.size()));
      catch_up_seconds_ += share * step_watch.elapsed_seconds();
    }
    for (size_t n = 0; n < in_step.size(); ++n) {
      const DraftQuery& query = queries[in_step[n]];
      Proposal& proposal = proposals[in_step[n]];
      const std::span<const float> row_logits(logits.data() + n * n_vocab, n_vocab);
      const int64_t position = query.pending_position + 1 + step_index;
      if (query.sampling->greedy()) {
        proposal.tokens.push_back(sample_token(row_logits, *query.sampling, 0, 0, scratch_));
      } else {
        sampling_distribution(row_logits, *query.sampling, scratch_);
        const double uniform =
            sampling_uniform(query.sampling->seed, query.stream, draw_counter(DrawPurpose::kDraft, position));
        proposal.tokens.push_back(sample_from(scratch_, uniform));
        proposal.q.push_back(scratch_);
      }
    }
  }
  return Status::Ok();
}

}  // namespace so
