// Tokenizer from GGUF metadata (tokenizer.ggml.*), following llama.cpp's reading of it:
// "gpt2" = byte-level BPE with a pre-tokenizer chosen by tokenizer.ggml.pre, "llama" =
// SentencePiece BPE merged by token score.
#include "base/log.h"
#include "tokenizer/tokenizer_model.h"

namespace so {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

Result<std::vector<std::pair<std::string, std::string>>> read_gguf_merges(const Metadata& metadata) {
  SO_ASSIGN_OR_RETURN(std::vector<std::string> lines, metadata.get_string_array("tokenizer.ggml.merges"));
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    // note: search from 1 so that a left part starting with a space stays whole, as llama.cpp does.
    const size_t space = lines[i].find(' ', 1);
    if (space == std::string::npos) {
      return format_error("tokenizer.ggml.merges entry ", i, " is ", quote_for_message(lines[i]),
                          "; expected two tokens separated by a space");
    }
    merges.emplace_back(lines[i].substr(0, space), lines[i].substr(space + 1));
  }
  return merges;
}

Status read_gguf_token_types(const Metadata& metadata, TokenizerSpec& spec) {
  if (!metadata.contains("tokenizer.ggml.token_type")) return Status::Ok();
  SO_ASSIGN_OR_RETURN(std::vector<int64_t> types, metadata.get_int_array("tokenizer.ggml.token_type"));
  if (types.size() != spec.token_texts.size()) {
    return format_error("tokenizer.ggml.token_type has ", types.size(), " entries but tokenizer.ggml.tokens has ",
                        spec.token_texts.size(), "; expected one type per token");
  }
  spec.token_types.resize(types.size());
  for (size_t i = 0; i < types.size(); ++i) {
    const bool known = types[i] >= 0 && types[i] <= static_cast<int64_t>(TokenType::kByte);
    spec.token_types[i] = known ? static_cast<TokenType>(types[i]) : TokenType::kNormal;
  }
  return Status::Ok();
}

Result<int32_t> read_gguf_token_id(const Metadata& metadata, std::string_view key, int32_t fallback) {
  SO_ASSIGN_OR_RETURN(int64_t id, metadata.get_int_or(key, fallback));
  // note: some converters write 0xFFFFFFFF (as u32) or -1 for "none".
  if (id < 0 || id == 0xFFFFFFFFll) return -1;
  if (id >= static_cast<int64_t>(INT32_MAX)) {
    return format_error("metadata key '", key, "' is ", id, "; expected a token id");
  }
  return static_cast<int32_t>(id);
}

// CONTROL and UNKNOWN tokens are cut out of the text only when special tokens are parsed;
// USER_DEFINED ones always (llama.cpp's rule).
void add_gguf_special_tokens(TokenizerSpec& spec) {
  for (size_t id = 0; id < spec.token_texts.size(); ++id) {
    const TokenType type = spec.token_types[id];
    if (type != TokenType::kControl && type != TokenType::kUserDefined && type != TokenType::kUnknown) continue;
    AddedToken token;
    token.id = static_cast<int32_t>(id);
    token.content = spec.token_texts[id];
    token.special = type != TokenType::kUserDefined;
    spec.added_tokens.push_back(std::move(token));
  }
}

Status read_gguf_byte_level(const Metadata& metadata, TokenizerSpec& spec) {
  spec.kind = TokenizerKind::kByteLevelBpe;
  SO_ASSIGN_OR_RETURN(spec.merges, read_gguf_merges(metadata));
  SO_ASSIGN_OR_RETURN(std::string pre, metadata.get_string_or("tokenizer.ggml.pre", ""));
  if (pre.empty()) {
    SO_LOG(Warn, "tokenizer.ggml.pre is missing; using llama.cpp's 'default' pre-tokenizer, "
           "which may split text differently from the model's training");
    pre = "default";
  }
  SO_ASSIGN_OR_RETURN(GgufPreTokenizerPreset preset, gguf_pre_tokenizer_preset(pre));
  spec.pre_tokenizer = std::move(preset.pre_tokenizer);
  spec.ignore_merges = preset.ignore_merges;
  spec.add_bos = preset.add_bos;
  SO_ASSIGN_OR_RETURN(spec.bos_id, read_gguf_token_id(metadata, "tokenizer.ggml.bos_token_id", -1));
  SO_ASSIGN_OR_RETURN(spec.eos_id, read_gguf_token_id(metadata, "tokenizer.ggml.eos_token_id", -1));
  SO_ASSIGN_OR_RETURN(spec.unk_id, read_gguf_token_id(metadata, "tokenizer.ggml.unknown_token_id", -1));
  return Status::Ok();
}

Status read_gguf_sentencepiece(const Metadata& metadata, TokenizerSpec& spec) {
  spec.kind = TokenizerKind::kSentencePieceBpe;
  spec.merge_by_score = true;
  spec.byte_fallback = true;
  if (metadata.contains("tokenizer.ggml.scores")) {
    SO_ASSIGN_OR_RETURN(std::vector<double> scores, metadata.get_float_array("tokenizer.ggml.scores"));
    spec.token_scores.assign(scores.begin(), scores.end());
  } else {
    SO_LOG(Warn, "tokenizer.ggml.scores is missing; SentencePiece merges fall back to left-to-right order");
  }
  SO_ASSIGN_OR_RETURN(bool add_space_prefix, metadata.get_bool_or("tokenizer.ggml.add_space_prefix", true));
  spec.pre_tokenizer.add_replace(" ", std::string(kSpaceMarker));
  if (add_space_prefix) {
    // llama.cpp puts the space in front of the text and of every fragment after a special token.
    spec.pre_tokenizer.add_prepend(std::string(kSpaceMarker), PrependScheme::kAlways, false);
    spec.space_prefix = SpacePrefix::kEveryFragment;
  }
  spec.add_bos = true;
  // llama.cpp's defaults for SentencePiece vocabularies: <unk>=0, <s>=1, </s>=2.
  SO_ASSIGN_OR_RETURN(spec.bos_id, read_gguf_token_id(metadata, "tokenizer.ggml.bos_token_id", 1));
  SO_ASSIGN_OR_RETURN(spec.eos_id, read_gguf_token_id(metadata, "tokenizer.ggml.eos_token_id", 2));
  SO_ASSIGN_OR_RETURN(spec.unk_id, read_gguf_token_id(metadata, "tokenizer.ggml.unknown_token_id", 0));
  return Status::Ok();
}

Result<std::unique_ptr<Tokenizer>> tokenizer_from_gguf(const Metadata& metadata) {
  if (!metadata.contains("tokenizer.ggml.model")) {
    return not_found("the model file has no tokenizer (metadata key 'tokenizer.ggml.model' is missing); "
                     "expected a GGUF converted with its vocabulary");
  }
  SO_ASSIGN_OR_RETURN(std::string model, metadata.get_string("tokenizer.ggml.model"));
  TokenizerSpec spec;
  SO_ASSIGN_OR_RETURN(spec.token_texts, metadata.get_string_array("tokenizer.ggml.tokens"));
  SO_TRY(read_gguf_token_types(metadata, spec));
  if (spec.token_types.empty()) spec.token_types.assign(spec.token_texts.size(), TokenType::kNormal);
  if (model == "gpt2") {
    SO_TRY(read_gguf_byte_level(metadata, spec));
  } else if (model == "llama") {
    SO_TRY(read_gguf_sentencepiece(metadata, spec));
  } else {
    return unsupported("tokenizer.ggml.model is ", quote_for_message(model),
                       "; this engine supports \"gpt2\" (byte-level BPE: GPT-2, SmolLM2, Qwen2, Llama-3) and "
                       "\"llama\" (SentencePiece BPE: Llama-2, Mistral, TinyLlama)");
  }
  SO_ASSIGN_OR_RETURN(spec.add_bos, metadata.get_bool_or("tokenizer.ggml.add_bos_token", spec.add_bos));
  for (std::string_view key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    SO_ASSIGN_OR_RETURN(int32_t id, read_gguf_token_id(metadata, key, -1));
    if (id >= 0) spec.end_of_generation_ids.push_back(id);
  }
  SO_ASSIGN_OR_RETURN(spec.chat_template, metadata.get_string_or("tokenizer.chat_template", ""));
  add_gguf_special_tokens(spec);
  return make_tokenizer(std::move(spec));
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf_metadata(const Metadata& metadata) {
  auto tokenizer = tokenizer_from_gguf(metadata);
  if (!tokenizer.ok()) return tokenizer.status().with_context("reading the tokenizer from GGUF metadata");
  return tokenizer;
}

}  // namespace so
