// Recognizing a chat template family from the markers in its Jinja text.
#include "tokenizer/chat_template.h"

#include <algorithm>
#include <array>
#include <ctime>
#include <optional>
#include <string_view>

namespace so {
namespace {

bool contains(const std::string& text, std::string_view marker) { return text.find(marker) != std::string::npos; }

// Python/Jinja string escapes inside a quoted literal.
std::string unescape_jinja_literal(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char next = text[++i];
    switch (next) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      default:
        out += next;
        break;  // \\ \' \"
    }
  }
  return out;
}

// The text of the Jinja string literal (or the raw template text) around `pos`.
std::string literal_around(const std::string& jinja, size_t pos) {
  size_t start = pos;
  while (start > 0) {
    const char c = jinja[start - 1];
    const bool quote = (c == '\'' || c == '"') && !(start >= 2 && jinja[start - 2] == '\\');
    if (quote) {  // inside a quoted literal: up to the closing quote
      size_t end = pos;
      while (end < jinja.size() && !(jinja[end] == c && jinja[end - 1] != '\\')) ++end;
      return unescape_jinja_literal(std::string_view(jinja).substr(start, end - start));
    }
    if (c == '}' && start >= 2 && (jinja[start - 2] == '}' || jinja[start - 2] == '%' || jinja[start - 2] == '#')) {
      break;  // raw template text: up to the next tag
    }
    --start;
  }
  size_t end = jinja.find('{', pos);
  return jinja.substr(start, (end == std::string::npos ? jinja.size() : end) - start);
}

// A ChatML template's built-in system prompt: a literal "<|im_start|>system\n...<|im_end|>"
// (SmolLM2, Qwen2); empty when the system turn is always built from the messages.
std::string chatml_default_system(const std::string& jinja) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  constexpr std::string_view kClose = "<|im_end|>";
  for (size_t pos = jinja.find(kOpen); pos != std::string::npos; pos = jinja.find(kOpen, pos + 1)) {
    const std::string literal = literal_around(jinja, pos);
    const size_t open = literal.find(kOpen);
    if (open == std::string::npos || literal.compare(open + kOpen.size(), 1, "\n") != 0) continue;
    const size_t begin = open + kOpen.size() + 1;
    const size_t close = literal.find(kClose, begin);
    if (close != std::string::npos) return literal.substr(begin, close - begin);
  }
  return {};
}

std::string today_date() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);
  return buffer;
}

// Llama-3.1+: the date its system header shows.
std::string llama3_header_date(const std::string& jinja) {
  if (contains(jinja, "strftime_now")) return today_date();
  constexpr std::string_view kAssign = "date_string = \"";
  const size_t pos = jinja.find(kAssign);
  if (pos != std::string::npos) {
    const size_t end = jinja.find('"', pos + kAssign.size());
    if (end != std::string::npos) return jinja.substr(pos + kAssign.size(), end - pos - kAssign.size());
  }
  return "26 Jul 2024";
}

ChatTemplate make_template(ChatFamily family) {
  ChatTemplate chat{};
  chat.family = family;
  if (family == ChatFamily::kLlama3) {
    chat.bos_text = "<|begin_of_text|>";
  } else if (family == ChatFamily::kGemma) {
    chat.bos_text = "<bos>";
  } else if (family != ChatFamily::kChatML) {
    chat.bos_text = "<s>";
    chat.eos_text = "</s>";
  }
  return chat;
}

ChatTemplate make_mistral(MistralVersion version) {
  ChatTemplate chat = make_template(ChatFamily::kMistral);
  chat.mistral_version = version;
  return chat;
}

struct NamedTemplate {
  std::string_view name;
  ChatTemplate (*make)();
};

const std::array<NamedTemplate, 10>& named_templates() {
  static const std::array<NamedTemplate, 10> kNamed = {{
      {"chatml", [] { return make_template(ChatFamily::kChatML); }},
      {"llama2", [] { return make_template(ChatFamily::kLlama2); }},
      {"mistral", [] { return make_mistral(MistralVersion::kLegacy); }},
      {"mistral-v1", [] { return make_mistral(MistralVersion::kV1); }},
      {"mistral-v3", [] { return make_mistral(MistralVersion::kV3); }},
      {"mistral-v3-tekken", [] { return make_mistral(MistralVersion::kV3Tekken); }},
      {"mistral-v7", [] { return make_mistral(MistralVersion::kV7); }},
      {"llama3", [] { return make_template(ChatFamily::kLlama3); }},
      {"llama3.1",
       [] {
         ChatTemplate chat = make_template(ChatFamily::kLlama3);
         chat.llama3_date = "26 Jul 2024";
         return chat;
       }},
      {"gemma", [] { return make_template(ChatFamily::kGemma); }},
  }};
  return kNamed;
}

Status unrecognized(std::string_view why) {
  return unsupported(why,
                     "; supported families: ChatML (<|im_start|>), Llama-2 ([INST] with <<SYS>>), Mistral "
                     "([INST]), Llama-3 (<|start_header_id|>), Gemma (<start_of_turn>). Pass --chat-template NAME "
                     "with NAME one of ",
                     chat_template_names());
}

std::optional<ChatTemplate> detect_from_markers(const std::string& jinja) {
  if (contains(jinja, "<|im_start|>")) {
    // Phi-4 (<|im_sep|>) and SmolVLM (<end_of_utterance>) share the marker but not the layout.
    if (contains(jinja, "<|im_sep|>") || contains(jinja, "<end_of_utterance>")) return std::nullopt;
    ChatTemplate chat = make_template(ChatFamily::kChatML);
    chat.default_system = chatml_default_system(jinja);
    return chat;
  }
  if (contains(jinja, "<start_of_turn>")) return make_template(ChatFamily::kGemma);
  if (contains(jinja, "<|start_header_id|>")) {
    ChatTemplate chat = make_template(ChatFamily::kLlama3);
    if (contains(jinja, "Cutting Knowledge Date")) chat.llama3_date = llama3_header_date(jinja);
    return chat;
  }
  if (!contains(jinja, "[INST]")) return std::nullopt;
  if (contains(jinja, "[SYSTEM_PROMPT]")) return make_mistral(MistralVersion::kV7);
  // Mistral's official v1/v3 templates take the system message apart, or list tools.
  if (contains(jinja, "' [INST] ' + system_message") || contains(jinja, "[AVAILABLE_TOOLS]")) {
    if (contains(jinja, " [INST]")) return make_mistral(MistralVersion::kV1);
    if (contains(jinja, "\"[INST]\"")) return make_mistral(MistralVersion::kV3Tekken);
    return make_mistral(MistralVersion::kV3);
  }
  if (contains(jinja, "<<SYS>>")) {
    ChatTemplate chat = make_template(ChatFamily::kLlama2);
    chat.llama2_strip = contains(jinja, ".strip()") || contains(jinja, "| trim") || contains(jinja, "|trim");
    chat.llama2_bos_each_turn = contains(jinja, "bos_token + '[INST]") || contains(jinja, "bos_token + \"[INST]");
    return chat;
  }
  return make_mistral(MistralVersion::kLegacy);
}

}  // namespace

std::string chat_template_names() {
  std::string names;
  for (const NamedTemplate& named : named_templates()) {
    if (!names.empty()) names += ", ";
    names += named.name;
  }
  return names;
}

std::string chat_template_of_vocabulary(const std::vector<std::string>& token_texts) {
  struct TurnTokens {
    const char* name;
    std::string_view open, close;
  };
  static constexpr TurnTokens kFamilies[] = {{"gemma", "<start_of_turn>", "<end_of_turn>"},
                                             {"chatml", "<|im_start|>", "<|im_end|>"},
                                             {"llama3", "<|start_header_id|>", "<|eot_id|>"}};
  std::string found;
  for (const TurnTokens& family : kFamilies) {
    const bool open = std::find(token_texts.begin(), token_texts.end(), family.open) != token_texts.end();
    if (!open || std::find(token_texts.begin(), token_texts.end(), family.close) == token_texts.end()) continue;
    if (!found.empty()) return "";
    found = family.name;
  }
  return found;
}

Result<ChatTemplate> detect_chat_template(const std::string& jinja, const std::string& override_name) {
  if (!override_name.empty()) {
    for (const NamedTemplate& named : named_templates()) {
      if (named.name == override_name) return named.make();
    }
    return invalid_argument("--chat-template ", quote_for_message(override_name),
                            " is not a known template; expected one of ", chat_template_names());
  }
  if (jinja.empty()) {
    return invalid_argument(
        "the model has no chat template (tokenizer.chat_template is missing); pass "
        "--chat-template NAME with NAME one of ",
        chat_template_names());
  }
  if (std::optional<ChatTemplate> chat = detect_from_markers(jinja)) return *chat;
  return unrecognized(str_cat("the model's chat template is not one this engine renders (it begins ",
                              quote_for_message(jinja, 80), ")"));
}

}  // namespace so
