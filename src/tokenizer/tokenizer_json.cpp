// Tokenizer from a Hugging Face tokenizer.json (+ tokenizer_config.json,
// generation_config.json, chat_template.jinja). Model type BPE only: byte-level when the
// pipeline has a ByteLevel step, SentencePiece-style (byte_fallback, "▁") otherwise.
#include <algorithm>

#include "base/log.h"
#include "tokenizer/tokenizer_json.h"

namespace so {
namespace {

using json = nlohmann::json;

// "<s>" or {"content": "<s>", ...}; empty when absent or null.
std::string token_text_of(const json& config, std::string_view key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return it->at("content").get<std::string>();
  return {};
}

Status read_merges(const json& merges, TokenizerSpec& spec) {
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& merge = merges[i];
    if (merge.is_array() && merge.size() == 2) {
      spec.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      continue;
    }
    const std::string line = merge.is_string() ? merge.get<std::string>() : std::string();
    const size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
      return format_error("tokenizer.json model.merges entry ", i, " is ", merge.dump(),
                          "; expected \"left right\" or [\"left\", \"right\"]");
    }
    spec.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return Status::Ok();
}

Status check_model(const json& model) {
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE") {
    return unsupported("tokenizer.json model type is ", quote_for_message(type),
                       "; this engine supports BPE (byte-level, or SentencePiece-style with byte_fallback)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it != model.end() && it->is_string() && !it->get<std::string>().empty()) {
      return unsupported("tokenizer.json model.", key, " is ", it->dump(), "; expected null or \"\"");
    }
  }
  if (model.contains("dropout") && model.at("dropout").is_number() && model.at("dropout").get<double>() > 0) {
    SO_LOG(Warn, "tokenizer.json BPE dropout is ignored; encoding is deterministic");
  }
  return Status::Ok();
}

// Vocabulary and added tokens -> texts and types indexed by id.
Status read_vocabulary(const json& root, TokenizerSpec& spec) {
  const json& vocab = root.at("model").at("vocab");
  const json& added = root.contains("added_tokens") && !root.at("added_tokens").is_null() ? root.at("added_tokens")
                                                                                           : json::array();
  int64_t max_id = -1;
  for (const auto& [text, id] : vocab.items()) max_id = std::max<int64_t>(max_id, id.get<int64_t>());
  for (const json& token : added) max_id = std::max<int64_t>(max_id, token.at("id").get<int64_t>());
  if (max_id < 0) return format_error("tokenizer.json has an empty vocabulary; expected model.vocab entries");
  if (max_id >= INT32_MAX) return format_error("tokenizer.json token id ", max_id, " is too large");
  spec.token_texts.assign(max_id + 1, std::string());
  spec.token_types.assign(max_id + 1, TokenType::kUnused);
  for (const auto& [text, id_json] : vocab.items()) {
    const int64_t id = id_json.get<int64_t>();
    if (id < 0) return format_error("tokenizer.json vocab entry ", quote_for_message(text), " has negative id ", id);
    spec.token_texts[id] = text;
    const bool byte_token = spec.byte_fallback && byte_token_value(text) >= 0;
    spec.token_types[id] = byte_token ? TokenType::kByte : TokenType::kNormal;
  }
  for (const json& token_json : added) {
    AddedToken token;
    token.id = token_json.at("id").get<int32_t>();
    token.content = token_json.at("content").get<std::string>();
    token.special = token_json.value("special", false);
    token.lstrip = token_json.value("lstrip", false);
    token.rstrip = token_json.value("rstrip", false);
    token.single_word = token_json.value("single_word", false);
    if (token.id < 0) return format_error("tokenizer.json added token ", token_json.dump(), " has a negative id");
    spec.token_texts[token.id] = token.content;
    spec.token_types[token.id] = token.special ? TokenType::kControl : TokenType::kUserDefined;
    spec.added_tokens.push_back(std::move(token));
  }
  return Status::Ok();
}

int32_t find_text(const TokenizerSpec& spec, std::string_view text) {
  if (text.empty()) return -1;
  for (const AddedToken& token : spec.added_tokens) {
    if (token.content == text) return token.id;
  }
  auto it = std::find(spec.token_texts.begin(), spec.token_texts.end(), text);
  return it == spec.token_texts.end() ? -1 : static_cast<int32_t>(it - spec.token_texts.begin());
}

// TemplateProcessing whose single-sequence template starts with a special token: that
// token is BOS and is added by default (Llama-3's tokenizer.json says so this way).
void read_post_processor(const json& processor, TokenizerSpec& spec) {
  if (processor.is_null()) return;
  const std::string type = processor.value("type", std::string());
  if (type == "Sequence") {
    for (const json& step : processor.at("processors")) read_post_processor(step, spec);
    return;
  }
  if (type != "TemplateProcessing" || !processor.contains("single")) return;
  const json& single = processor.at("single");
  if (single.empty() || !single[0].contains("SpecialToken")) return;
  const std::string name = single[0].at("SpecialToken").at("id").get<std::string>();
  int32_t id = find_text(spec, name);
  const json& specials = processor.value("special_tokens", json::object());
  if (specials.contains(name) && !specials.at(name).at("ids").empty()) id = specials.at(name).at("ids")[0].get<int32_t>();
  if (id >= 0) {
    spec.bos_id = id;
    spec.add_bos = true;
  }
}

Status read_tokenizer_config(const json& config, TokenizerSpec& spec) {
  if (const std::string bos = token_text_of(config, "bos_token"); !bos.empty()) spec.bos_id = find_text(spec, bos);
  if (const std::string eos = token_text_of(config, "eos_token"); !eos.empty()) spec.eos_id = find_text(spec, eos);
  if (const std::string unk = token_text_of(config, "unk_token"); !unk.empty() && spec.unk_id < 0) {
    spec.unk_id = find_text(spec, unk);
  }
  if (config.contains("add_bos_token") && config.at("add_bos_token").is_boolean()) {
    spec.add_bos = config.at("add_bos_token").get<bool>();
  }
  if (auto it = config.find("chat_template"); it != config.end()) {
    if (it->is_string()) {
      spec.chat_template = it->get<std::string>();
    } else if (it->is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const json& named : *it) {
        if (spec.chat_template.empty() || named.value("name", std::string()) == "default") {
          spec.chat_template = named.value("template", std::string());
        }
      }
    }
  }
  return Status::Ok();
}

void read_generation_config(const json& config, TokenizerSpec& spec) {
  auto it = config.find("eos_token_id");
  if (it == config.end()) return;
  const json ids = it->is_array() ? *it : json::array({*it});
  for (const json& id : ids) {
    if (id.is_number_integer() && id.get<int64_t>() >= 0 &&
        id.get<int64_t>() < static_cast<int64_t>(spec.token_texts.size())) {
      spec.end_of_generation_ids.push_back(id.get<int32_t>());
    }
  }
}

Result<json> parse_json(std::string_view text, std::string_view name) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return format_error(name, " is not valid JSON; expected the file Hugging Face writes");
  if (!parsed.is_object()) return format_error(name, " is ", parsed.type_name(), "; expected a JSON object");
  return parsed;
}

Result<std::unique_ptr<Tokenizer>> read_hf_files(const HfTokenizerFiles& files) {
  SO_ASSIGN_OR_RETURN(json root, parse_json(files.tokenizer_json, "tokenizer.json"));
  if (!root.contains("model")) return format_error("tokenizer.json has no \"model\" section");
  const json& model = root.at("model");
  SO_TRY(check_model(model));
  TokenizerSpec spec;
  spec.byte_fallback = model.value("byte_fallback", false);
  spec.fuse_unk = model.value("fuse_unk", false);
  spec.ignore_merges = model.value("ignore_merges", false);
  SO_TRY(read_vocabulary(root, spec));
  SO_TRY(read_merges(model.value("merges", json::array()), spec));
  if (model.contains("unk_token") && model.at("unk_token").is_string()) {
    spec.unk_id = find_text(spec, model.at("unk_token").get<std::string>());
  }

  HfPipeline pipeline;
  SO_TRY(hf_read_normalizer(root.value("normalizer", json()), pipeline));
  SO_TRY(hf_read_pre_tokenizer(root.value("pre_tokenizer", json()), pipeline));
  const json decoder = root.value("decoder", json());
  const bool byte_level_decoder = decoder.is_object() && decoder.dump().find("\"ByteLevel\"") != std::string::npos;
  spec.kind = pipeline.byte_level || byte_level_decoder ? TokenizerKind::kByteLevelBpe
                                                        : TokenizerKind::kSentencePieceBpe;
  spec.pre_tokenizer = std::move(pipeline.pre_tokenizer);
  spec.space_prefix = spec.kind == TokenizerKind::kSentencePieceBpe ? pipeline.space_prefix : SpacePrefix::kNone;
  if (spec.kind == TokenizerKind::kByteLevelBpe) {
    for (TokenType& type : spec.token_types) {
      if (type == TokenType::kByte) type = TokenType::kNormal;
    }
  }

  read_post_processor(root.value("post_processor", json()), spec);
  if (!files.tokenizer_config_json.empty()) {
    SO_ASSIGN_OR_RETURN(json config, parse_json(files.tokenizer_config_json, "tokenizer_config.json"));
    SO_TRY(read_tokenizer_config(config, spec));
  }
  if (!files.generation_config_json.empty()) {
    SO_ASSIGN_OR_RETURN(json config, parse_json(files.generation_config_json, "generation_config.json"));
    read_generation_config(config, spec);
  }
  if (spec.chat_template.empty()) spec.chat_template = std::string(files.chat_template_jinja);
  if (spec.unk_id >= 0) spec.token_types[spec.unk_id] = TokenType::kUnknown;
  return make_tokenizer(std::move(spec));
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> tokenizer_from_hf_files(const HfTokenizerFiles& files) {
  try {
    return read_hf_files(files);
  } catch (const json::exception& error) {
    // note: nlohmann reports wrong types and missing keys by exception; they are all format errors here.
    return format_error("tokenizer.json or tokenizer_config.json has an unexpected shape: ", error.what());
  }
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_hf_json(std::string_view tokenizer_json,
                                                          std::string_view tokenizer_config_json) {
  return tokenizer_from_hf_files({tokenizer_json, tokenizer_config_json, {}, {}});
}

}  // namespace so
