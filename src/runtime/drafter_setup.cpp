#include "runtime/drafter_setup.h"

#include <limits>

#include "offload/layer_streamer.h"
#include "runtime/dummy_model.h"
#include "spec/model_drafter.h"
#include "spec/ngram_drafter.h"

namespace so {

namespace {
// A device backend cannot read the draft's weights from the model file: they go to device
// memory once, all of them (the draft stays resident; only the target streams).
Result<std::unique_ptr<ModelDrafter>> resident_drafter(const Model& model, Backend& backend,
                                                       const ModelDrafterOptions& options) {
  auto drafter = std::make_unique<ModelDrafter>(model, backend, options);
  if (backend.reads_host_memory()) return drafter;
  LayerStreamerOptions resident;
  resident.device_budget_bytes = std::numeric_limits<int64_t>::max();
  resident.n_layers = options.n_layers;
  auto streamer = LayerStreamer::create(model, backend, resident);
  if (!streamer.ok()) return streamer.status().with_context("placing the draft's weights in device memory");
  drafter->set_layer_source(std::move(streamer).value());
  return drafter;
}
}  // namespace

Status check_same_vocabulary(const Tokenizer& target, const Tokenizer& draft, const ModelConfig& target_config,
                             const ModelConfig& draft_config) {
  if (target.n_vocab() != draft.n_vocab() || target_config.n_vocab != draft_config.n_vocab) {
    return invalid_argument("the draft model's vocabulary has ", draft.n_vocab(), " tokens (", draft_config.n_vocab,
                            " logits) but the target's has ", target.n_vocab(), " (", target_config.n_vocab,
                            "); a draft model must use the target's tokenizer (e.g. a smaller model of the same family)");
  }
  const auto& target_texts = target.token_texts();
  const auto& draft_texts = draft.token_texts();
  for (size_t id = 0; id < target_texts.size(); ++id) {
    if (target_texts[id] != draft_texts[id]) {
      return invalid_argument("the draft model's token ", id, " is ", quote_for_message(draft_texts[id]),
                              " but the target's is ", quote_for_message(target_texts[id]),
                              "; a draft model must use the target's tokenizer (e.g. a smaller model of the same family)");
    }
  }
  return Status::Ok();
}

Result<DrafterSetup> create_drafter(const EngineOptions& options, const Model& target, const Tokenizer& target_tokenizer,
                                    Backend& backend) {
  const SpecOptions& spec = options.spec;
  DrafterSetup setup;
  if (spec.draft_max < 0) return invalid_argument("draft length ", spec.draft_max, " is negative; expected 0 or more");
  if (spec.drafter == DrafterKind::kNone || spec.draft_max == 0) return setup;

  ModelDrafterOptions model_options;
  model_options.max_step_tokens = options.max_step_tokens;
  model_options.kv_page_tokens = options.kv_page_tokens;
  model_options.kv_budget_bytes = options.kv_budget_bytes;
  if (spec.draft_context < 0) {
    return invalid_argument("--draft-context ", spec.draft_context, " is negative; expected 0 (the whole prompt) or more");
  }
  model_options.context_tokens = spec.draft_context;
  switch (spec.drafter) {
    case DrafterKind::kNone: break;
    case DrafterKind::kNgram: {
      if (spec.ngram_max < 1) return invalid_argument("n-gram size ", spec.ngram_max, " must be at least 1");
      setup.drafter = std::make_unique<NgramDrafter>(NgramOptions{spec.ngram_max, 1});
      break;
    }
    case DrafterKind::kSelfDraft: {
      const int n_layers = target.config.n_layers;
      if (spec.draft_layers < 1 || spec.draft_layers >= n_layers) {
        return invalid_argument("--draft-layers ", spec.draft_layers, " is out of range; the target has ", n_layers,
                                " layers, so a self-draft takes 1 to ", n_layers - 1);
      }
      model_options.n_layers = spec.draft_layers;
      SO_ASSIGN_OR_RETURN(setup.drafter, resident_drafter(target, backend, model_options));
      break;
    }
    case DrafterKind::kDraftModel: {
      auto model = load_model_as(spec.draft_model_path, options.load_format, options.map_mode);
      if (!model.ok()) return model.status().with_context(str_cat("loading the draft model '", spec.draft_model_path, "'"));
      auto tokenizer = tokenizer_of(**model, options.load_format.dummy);
      if (!tokenizer.ok()) {
        return tokenizer.status().with_context(str_cat("loading the tokenizer of the draft model '", spec.draft_model_path, "'"));
      }
      SO_TRY(check_same_vocabulary(target_tokenizer, **tokenizer, target.config, (*model)->config)
                 .with_context(str_cat("draft model '", spec.draft_model_path, "'")));
      setup.draft_model = std::move(model).value();
      SO_ASSIGN_OR_RETURN(setup.drafter, resident_drafter(*setup.draft_model, backend, model_options));
      break;
    }
  }
  return setup;
}

}  // namespace so
