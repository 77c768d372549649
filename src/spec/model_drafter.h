// A draft model proposes tokens autoregressively with its own KV cache, kept between
// passes: after verification it is truncated to the committed prefix and catches up on
// the tokens it has not seen. The model is either a separate, smaller model with the
// target's vocabulary, or the target's own first N layers (plus its final norm and LM
// head), sharing the target's weights.
#pragma once

#include <memory>
#include <unordered_map>

#include "kv/kv_cache.h"
#include "kv/step_builder.h"
#include "model/forward.h"
#include "spec/drafter.h"

namespace so {

struct ModelDrafterOptions {
  int n_layers = -1;             // < 0: the whole model
  int max_step_tokens = 512;     // catch-up (prompt) tokens per draft forward step
  int kv_page_tokens = 256;
  int64_t kv_budget_bytes = 0;   // 0: no cap
  // > 0: a row's draft reads only the last N tokens of its prompt (then everything it
  // commits). On long prompts the draft's prefill otherwise costs as much as its drafting;
  // positions restart at 0, which rotary attention does not notice.
  int context_tokens = 0;
};

class ModelDrafter final : public Drafter {
 public:
  // The model outlives the drafter (the engine owns both).
  ModelDrafter(const Model& model, Backend& backend, const ModelDrafterOptions& options);
  ~ModelDrafter() override;
  // Where the draft's weights come from (a device backend keeps them resident through one);
  // the drafter keeps it alive.
  void set_layer_source(std::unique_ptr<LayerSource> source);

  std::string_view name() const override { return name_; }
  Status add_row(int64_t row, std::span<const int32_t> prompt) override;
  void remove_row(int64_t row) override;
  Status propose(std::span<const DraftQuery> queries, std::vector<Proposal>& proposals) override;
  void commit(int64_t row, std::span<const int32_t> committed) override;
  double catch_up_seconds() const override { return catch_up_seconds_; }
  int64_t fed_tokens() const override { return fed_tokens_; }
  int64_t max_positions() const override { return model_.config.n_ctx_train; }

  const KvCache& kv_cache() const { return *kv_; }

 private:
  struct Row {
    int32_t kv_row = 0;
    std::vector<int32_t> history;    // committed tokens (prompt, then output)
    std::vector<int32_t> kv_tokens;  // the tokens the draft KV holds, in order
  };
  Row& row_of(int64_t row);
  // Feeds rows' backlogs (history and pending token not yet in the KV) in chunks of at
  // most max_step_tokens, so that afterwards each row's backlog is its last token.
  Status catch_up(std::span<const DraftQuery> queries);
  Status run_step(StepBuilder& step, std::vector<float>& logits);
  Status draft(std::span<const DraftQuery> queries, std::vector<Proposal>& proposals);

  const Model& model_;
  ModelDrafterOptions options_;
  std::string name_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<LayerSource> layer_source_;  // before runner_: the runner points at it
  std::unique_ptr<ModelRunner> runner_;
  Buffer logits_buffer_;
  std::unordered_map<int64_t, Row> rows_;
  std::vector<TokenProbability> scratch_;
  double catch_up_seconds_ = 0.0;
  int64_t fed_tokens_ = 0;
};

}  // namespace so
