// Internal: reading a Hugging Face tokenizer (tokenizer.json and the files beside it).
#pragma once

#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_model.h"

namespace so {

struct HfTokenizerFiles {
  std::string_view tokenizer_json;
  std::string_view tokenizer_config_json;   // may be empty
  std::string_view generation_config_json;  // may be empty; eos_token_id (int or list)
  std::string_view chat_template_jinja;     // may be empty; chat_template.jinja beside it
};

Result<std::unique_ptr<Tokenizer>> tokenizer_from_hf_files(const HfTokenizerFiles& files);

// The normalizer and pre_tokenizer sections as PreTokenizer steps (tokenizer_json_pipeline.cpp).
struct HfPipeline {
  PreTokenizer pre_tokenizer;
  bool byte_level = false;  // a ByteLevel pre-tokenizer was seen
  SpacePrefix space_prefix = SpacePrefix::kNone;
};
Status hf_read_normalizer(const nlohmann::json& normalizer, HfPipeline& pipeline);
Status hf_read_pre_tokenizer(const nlohmann::json& pre_tokenizer, HfPipeline& pipeline);

}  // namespace so
