// tokenizer.json "normalizer" and "pre_tokenizer" -> PreTokenizer steps.
#include "base/log.h"
#include "tokenizer/tokenizer_json.h"

namespace so {
namespace {

using json = nlohmann::json;

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

// A literal string as a PCRE2 pattern: ASCII punctuation escaped, everything else as is.
std::string regex_quote(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80 && !std::isalnum(byte) && byte != ' ' && byte != '_') out += '\\';
    out += c;
  }
  return out;
}

// {"Regex": "..."} or {"String": "..."} -> a pattern.
Result<std::string> read_pattern(const json& pattern, std::string_view where) {
  if (pattern.is_object() && pattern.contains("Regex")) return pattern.at("Regex").get<std::string>();
  if (pattern.is_object() && pattern.contains("String")) return regex_quote(pattern.at("String").get<std::string>());
  return format_error(where, " pattern is ", pattern.dump(), "; expected {\"Regex\": ...} or {\"String\": ...}");
}

Status add_split(HfPipeline& pipeline, std::string_view pattern, SplitBehavior behavior, bool invert) {
  SO_ASSIGN_OR_RETURN(auto regex, TokenizerRegex::compile(pattern));
  pipeline.pre_tokenizer.add_split(std::move(regex), behavior, invert);
  return Status::Ok();
}

Status read_metaspace(const json& step, HfPipeline& pipeline) {
  const std::string replacement = step.value("replacement", std::string(kSpaceMarker));
  std::string scheme = step.value("prepend_scheme", std::string("always"));
  if (step.contains("add_prefix_space") && step.at("add_prefix_space").is_boolean() &&
      !step.contains("prepend_scheme")) {
    scheme = step.at("add_prefix_space").get<bool>() ? "always" : "never";  // older files
  }
  pipeline.pre_tokenizer.add_replace(" ", replacement);
  if (scheme == "always" || scheme == "first") {
    const PrependScheme prepend = scheme == "always" ? PrependScheme::kAlways : PrependScheme::kFirst;
    pipeline.pre_tokenizer.add_prepend(replacement, prepend, /*only_if_missing=*/true);
    if (replacement == kSpaceMarker) {
      pipeline.space_prefix = prepend == PrependScheme::kAlways ? SpacePrefix::kEveryFragment
                                                                : SpacePrefix::kFirstFragment;
    }
  } else if (scheme != "never") {
    return unsupported("tokenizer.json Metaspace prepend_scheme is ", quote_for_message(scheme),
                       "; expected \"always\", \"first\" or \"never\"");
  }
  if (step.value("split", true)) SO_TRY(add_split(pipeline, regex_quote(replacement), SplitBehavior::kMergedWithNext, false));
  return Status::Ok();
}

}  // namespace

Status hf_read_normalizer(const json& normalizer, HfPipeline& pipeline) {
  if (normalizer.is_null()) return Status::Ok();
  const std::string type = normalizer.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const json& step : normalizer.at("normalizers")) SO_TRY(hf_read_normalizer(step, pipeline));
  } else if (type == "Prepend") {
    const std::string prefix = normalizer.at("prepend").get<std::string>();
    pipeline.pre_tokenizer.add_prepend(prefix, PrependScheme::kAlways, false);
    if (prefix == kSpaceMarker) pipeline.space_prefix = SpacePrefix::kEveryFragment;
  } else if (type == "Replace") {
    const json& pattern = normalizer.at("pattern");
    if (!pattern.contains("String")) {
      return unsupported("tokenizer.json Replace normalizer with pattern ", pattern.dump(),
                         " is not supported; expected a {\"String\": ...} pattern");
    }
    pipeline.pre_tokenizer.add_replace(pattern.at("String").get<std::string>(),
                                       normalizer.at("content").get<std::string>());
  } else if (type == "NFC") {
    // note: most text is NFC already, and llama.cpp does not normalize either; decomposed
    // input (e.g. "e" + U+0301) can tokenize differently from Hugging Face.
    SO_LOG(Info, "tokenizer.json asks for NFC normalization; text is used as given");
  } else {
    return unsupported("tokenizer.json normalizer type ", quote_for_message(type),
                       " is not supported; supported: Sequence, Prepend, Replace (string pattern), NFC");
  }
  return Status::Ok();
}

Status hf_read_pre_tokenizer(const json& pre_tokenizer, HfPipeline& pipeline) {
  if (pre_tokenizer.is_null()) return Status::Ok();
  const std::string type = pre_tokenizer.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const json& step : pre_tokenizer.at("pretokenizers")) SO_TRY(hf_read_pre_tokenizer(step, pipeline));
  } else if (type == "Split") {
    SO_ASSIGN_OR_RETURN(std::string pattern, read_pattern(pre_tokenizer.at("pattern"), "tokenizer.json Split"));
    SO_ASSIGN_OR_RETURN(SplitBehavior behavior,
                        split_behavior_from_name(pre_tokenizer.value("behavior", std::string("Isolated"))));
    SO_TRY(add_split(pipeline, pattern, behavior, pre_tokenizer.value("invert", false)));
  } else if (type == "ByteLevel") {
    pipeline.byte_level = true;
    if (pre_tokenizer.value("add_prefix_space", true)) {
      pipeline.pre_tokenizer.add_prepend(" ", PrependScheme::kAlways, /*only_if_missing=*/true);
    }
    if (pre_tokenizer.value("use_regex", true)) {
      SO_TRY(add_split(pipeline, kGpt2SplitPattern, SplitBehavior::kIsolated, false));
    }
  } else if (type == "Digits") {
    const bool individual = pre_tokenizer.value("individual_digits", false);
    SO_TRY(add_split(pipeline, individual ? R"(\p{N})" : R"(\p{N}+)", SplitBehavior::kIsolated, false));
  } else if (type == "Metaspace") {
    SO_TRY(read_metaspace(pre_tokenizer, pipeline));
  } else if (type == "Whitespace") {
    SO_TRY(add_split(pipeline, R"(\w+|[^\w\s]+)", SplitBehavior::kRemoved, true));
  } else if (type == "WhitespaceSplit") {
    SO_TRY(add_split(pipeline, R"(\s+)", SplitBehavior::kRemoved, false));
  } else if (type == "Punctuation") {
    SO_ASSIGN_OR_RETURN(SplitBehavior behavior,
                        split_behavior_from_name(pre_tokenizer.value("behavior", std::string("Isolated"))));
    SO_TRY(add_split(pipeline, R"([\p{P}!-/:-@\[-`{-~])", behavior, false));
  } else {
    return unsupported("tokenizer.json pre_tokenizer type ", quote_for_message(type),
                       " is not supported; supported: Sequence, Split, ByteLevel, Digits, Metaspace, Whitespace, "
                       "WhitespaceSplit, Punctuation");
  }
  return Status::Ok();
}

}  // namespace so
