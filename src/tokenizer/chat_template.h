// Chat templates for the common families, recognized from the model's Jinja template
// (tokenizer.chat_template). Not a Jinja engine: a known template is detected by its
// markers and rendered natively; an unknown one is refused with a clear error.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace so {

enum class ChatFamily { kChatML, kLlama2, kMistral, kLlama3 };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct ChatTemplate {
  ChatFamily family;
  std::string default_system;  // e.g. SmolLM2's built-in system prompt, empty if none
  std::string bos_text;        // BOS token text the template emits itself, e.g. "<s>"
};

// jinja: the template string from the model (may be empty: then an error that says so
// and lists --chat-template choices). override_name: "chatml", "llama2", "mistral",
// "llama3" to force one.
Result<ChatTemplate> detect_chat_template(const std::string& jinja, const std::string& override_name);

// Renders messages; add_generation_prompt appends the assistant header.
Result<std::string> render_chat(const ChatTemplate& chat, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt);

}  // namespace so
