// Builds the drafter SpecOptions asks for, checking it fits the target.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "spec/drafter.h"
#include "tokenizer/tokenizer.h"

namespace so {

struct DrafterSetup {
  std::unique_ptr<Model> draft_model;  // set for a separate draft model
  std::unique_ptr<Drafter> drafter;    // null: plain decoding
};

Result<DrafterSetup> create_drafter(const EngineOptions& options, const Model& target, const Tokenizer& target_tokenizer,
                                    Backend& backend);

// A draft model must share the target's vocabulary: same size, same token table.
Status check_same_vocabulary(const Tokenizer& target, const Tokenizer& draft, const ModelConfig& target_config,
                             const ModelConfig& draft_config);

}  // namespace so
