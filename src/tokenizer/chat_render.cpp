// Rendering messages the way each family's reference Jinja template does, character for
// character (tests/python/test_tokenizer_chat.py renders the real templates with jinja2).
#include <span>

#include "tokenizer/chat_template.h"
#include "tokenizer/unicode_text.h"

namespace so {
namespace {

std::string strip(std::string_view text) { return std::string(unicode_strip_python(text)); }

Status roles_must_alternate(std::string_view family, size_t index, std::string_view role) {
  return invalid_argument(family,
                          " chat template: after the optional first system message, roles must alternate "
                          "user/assistant/user/...; message ",
                          index, " has role ", quote_for_message(role));
}

Status unknown_role(std::string_view family, std::string_view role, std::string_view supported) {
  return invalid_argument(family, " chat template: role ", quote_for_message(role), " is not supported; expected ",
                          supported);
}

// The prompt as it is built: template text, and content (a message's text, or text derived
// from it) whose range is remembered.
class Prompt {
 public:
  Prompt& operator<<(std::string_view template_text) {
    out_.text += template_text;
    return *this;
  }
  Prompt& content(std::string_view text) {
    out_.contents.push_back({out_.text.size(), out_.text.size() + text.size()});
    out_.text += text;
    return *this;
  }
  RenderedChat take() { return std::move(out_); }

 private:
  RenderedChat out_;
};

RenderedChat render_chatml(const ChatTemplate& chat, std::span<const ChatMessage> messages, bool generation_prompt) {
  Prompt out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && messages[0].role != "system" && !chat.default_system.empty()) {
      out << "<|im_start|>system\n" << chat.default_system << "<|im_end|>\n";
    }
    out << "<|im_start|>" << messages[i].role << "\n";
    out.content(messages[i].content) << "<|im_end|>\n";
  }
  if (generation_prompt) out << "<|im_start|>assistant\n";
  return out.take();
}

// Meta's Llama-2-chat template: the system message goes into the first user turn.
Result<RenderedChat> render_llama2(const ChatTemplate& chat, std::span<const ChatMessage> messages) {
  const bool has_system = chat.llama2_system && !messages.empty() && messages[0].role == "system";
  const std::span<const ChatMessage> turns = has_system ? messages.subspan(1) : messages;
  Prompt out;
  for (size_t i = 0; i < turns.size(); ++i) {
    const ChatMessage& message = turns[i];
    if ((message.role == "user") != (i % 2 == 0)) return roles_must_alternate("Llama-2", i, message.role);
    // note: the <<SYS>> block joins the user's text (plain text, no special tokens) and is
    // stripped with it, so the two are one content range.
    std::string content = message.content;
    if (i == 0 && has_system) content = "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" + content;
    if (chat.llama2_strip) content = strip(content);
    if (message.role == "user") {
      if (chat.llama2_bos_each_turn || i == 0) out << chat.bos_text;
      out << "[INST] ";
      out.content(content) << " [/INST]";
    } else if (message.role == "assistant") {
      out << " ";
      out.content(content) << " " << chat.eos_text;
    }
  }
  return out.take();
}

Result<RenderedChat> render_mistral(const ChatTemplate& chat, std::span<const ChatMessage> messages) {
  const MistralVersion version = chat.mistral_version;
  Prompt out;
  out << chat.bos_text;
  if (version == MistralVersion::kV7) {
    for (const ChatMessage& message : messages) {
      if (message.role == "user") {
        out << "[INST] ";
        out.content(message.content) << "[/INST]";
      } else if (message.role == "system") {
        out << "[SYSTEM_PROMPT] ";
        out.content(message.content) << "[/SYSTEM_PROMPT]";
      } else if (message.role == "assistant") {
        out << " ";
        out.content(message.content) << chat.eos_text;
      } else {
        return unknown_role("Mistral", message.role, "user, system or assistant");
      }
    }
    return out.take();
  }
  const bool has_system = version != MistralVersion::kLegacy && !messages.empty() && messages[0].role == "system";
  const std::span<const ChatMessage> turns = has_system ? messages.subspan(1) : messages;
  for (size_t i = 0; i < turns.size(); ++i) {
    const ChatMessage& message = turns[i];
    if (message.role != "user" && message.role != "assistant") {
      return unknown_role("Mistral", message.role,
                          version == MistralVersion::kLegacy
                              ? "user or assistant (this template has no system role; --chat-template mistral-v1 has)"
                              : "user or assistant after an optional first system message");
    }
    if ((message.role == "user") != (i % 2 == 0)) return roles_must_alternate("Mistral", i, message.role);
  }
  for (size_t i = 0; i < turns.size(); ++i) {
    const ChatMessage& message = turns[i];
    if (message.role == "user") {
      // v1 puts the system message before the first user turn, v3 before the last message.
      const bool with_system = has_system && (version == MistralVersion::kV1 ? i == 0 : i + 1 == turns.size());
      const std::string content = with_system ? messages[0].content + "\n\n" + message.content : message.content;
      switch (version) {
        case MistralVersion::kLegacy:
          out << "[INST] ";
          out.content(content) << " [/INST]";
          break;
        case MistralVersion::kV1:
          out << " [INST] ";
          out.content(content) << " [/INST]";
          break;
        case MistralVersion::kV3:
          out << "[INST] ";
          out.content(content) << "[/INST]";
          break;
        default:
          out << "[INST]";
          out.content(content) << "[/INST]";
          break;
      }
    } else {
      switch (version) {
        case MistralVersion::kV1:
          out << " ";
          out.content(message.content) << chat.eos_text;
          break;
        case MistralVersion::kV3:
          out << " ";
          out.content(strip(message.content)) << chat.eos_text;
          break;
        default:
          out.content(message.content) << chat.eos_text;
          break;
      }
    }
  }
  return out.take();
}

void llama3_turn(Prompt& out, std::string_view role, std::string_view content) {
  out << "<|start_header_id|>" << role << "<|end_header_id|>\n\n";
  out.content(content) << "<|eot_id|>";
}

RenderedChat render_llama3(const ChatTemplate& chat, std::span<const ChatMessage> messages, bool generation_prompt) {
  Prompt out;
  if (chat.llama3_date.empty()) {  // Llama-3.0
    for (size_t i = 0; i < messages.size(); ++i) {
      if (i == 0) out << chat.bos_text;
      llama3_turn(out, messages[i].role, strip(messages[i].content));
    }
  } else {  // Llama-3.1+: a system header with the date always comes first
    const bool has_system = !messages.empty() && messages[0].role == "system";
    const std::string system = has_system ? strip(messages[0].content) : std::string();
    out << chat.bos_text;
    out << "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: "
        << chat.llama3_date << "\n\n";
    out.content(system) << "<|eot_id|>";
    for (const ChatMessage& message : messages.subspan(has_system ? 1 : 0)) {
      if (message.role == "tool" || message.role == "ipython") {
        llama3_turn(out, "ipython", message.content);
      } else {
        llama3_turn(out, message.role, strip(message.content));
      }
    }
  }
  if (generation_prompt) out << "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out.take();
}

// Gemma's template: a system message (untrimmed, then a blank line) opens the first turn; the
// assistant is "model"; turns alternate user / other, contents trimmed.
Result<RenderedChat> render_gemma(const ChatTemplate& chat, std::span<const ChatMessage> messages,
                                  bool generation_prompt) {
  Prompt out;
  out << chat.bos_text;
  const bool has_system = !messages.empty() && messages[0].role == "system";
  const std::span<const ChatMessage> turns = has_system ? messages.subspan(1) : messages;
  for (size_t i = 0; i < turns.size(); ++i) {
    const ChatMessage& message = turns[i];
    if ((message.role == "user") != (i % 2 == 0)) {
      return roles_must_alternate("Gemma", i + (has_system ? 1 : 0), message.role);
    }
    out << "<start_of_turn>" << (message.role == "assistant" ? std::string_view("model") : message.role) << "\n";
    if (i == 0 && has_system) out.content(messages[0].content) << "\n\n";
    out.content(strip(message.content)) << "<end_of_turn>\n";
  }
  if (generation_prompt) out << "<start_of_turn>model\n";
  return out.take();
}

}  // namespace

Result<RenderedChat> render_chat_parts(const ChatTemplate& chat, const std::vector<ChatMessage>& messages,
                                       bool add_generation_prompt) {
  switch (chat.family) {
    case ChatFamily::kChatML:
      return render_chatml(chat, messages, add_generation_prompt);
    case ChatFamily::kLlama2:
      return render_llama2(chat, messages);
    case ChatFamily::kMistral:
      return render_mistral(chat, messages);
    case ChatFamily::kLlama3:
      return render_llama3(chat, messages, add_generation_prompt);
    case ChatFamily::kGemma:
      return render_gemma(chat, messages, add_generation_prompt);
  }
  return invalid_argument("unknown chat family");
}

Result<std::string> render_chat(const ChatTemplate& chat, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) {
  SO_ASSIGN_OR_RETURN(RenderedChat rendered, render_chat_parts(chat, messages, add_generation_prompt));
  return std::move(rendered.text);
}

}  // namespace so
