// DeepSeek V2/V3 configuration (GGUF "deepseek2", config.json "deepseek_v2"/"deepseek_v3"):
// the parts beyond the generic fields config.cpp reads.
#pragma once

#include <string>

#include "base/status.h"
#include "format/metadata.h"
#include "model/config.h"

namespace so {

// After the generic GGUF fields: MLA ranks and head sizes, dense first layers, shared experts,
// routing. has_selection_bias: the file holds exp_probs_b tensors (V3).
Status deepseek2_from_gguf(const Metadata& m, const std::string& prefix, bool has_selection_bias, ModelConfig& c);

// After the generic config.json fields, rope scaling included.
Status deepseek2_from_hf(const Metadata& m, ModelConfig& c);

}  // namespace so
