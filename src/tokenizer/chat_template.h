// Chat templates for the common families, recognized from the model's Jinja template
// (tokenizer.chat_template). Not a Jinja engine: a known template is detected by its
// markers and rendered natively; an unknown one is refused with a clear error.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "tokenizer/special_tokens.h"

namespace so {

enum class ChatFamily { kChatML, kLlama2, kMistral, kLlama3, kGemma };

// Mistral's published template generations (mistralai cookbook naming).
enum class MistralVersion {
  kLegacy,    // Mistral-7B-Instruct v0.1/v0.2, Mixtral: "[INST] x [/INST]", no system role
  kV1,        // " [INST] x [/INST]", system before the first user message
  kV3,        // "[INST] x[/INST]", system before the last user message
  kV3Tekken,  // "[INST]x[/INST]", system before the last user message
  kV7,        // "[SYSTEM_PROMPT] s[/SYSTEM_PROMPT][INST] x[/INST]"
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct ChatTemplate {
  ChatFamily family;
  std::string default_system;  // e.g. SmolLM2's built-in system prompt, empty if none
  std::string bos_text;        // BOS token text the template emits itself, e.g. "<s>"
  std::string eos_text;        // EOS text closing assistant turns (Llama-2, Mistral), e.g. "</s>"
  // Llama-2 layout details, read from the template text.
  bool llama2_system = true;         // a system message becomes a <<SYS>> block in the first turn
  bool llama2_strip = true;          // turns are content.strip()ped
  bool llama2_bos_each_turn = true;  // bos_token before every [INST], not only the first
  MistralVersion mistral_version = MistralVersion::kLegacy;
  // Llama-3.1+ opens with a system header holding "Today Date: <llama3_date>"; empty for
  // the Llama-3.0 layout. Detection fills in the template's default ("26 Jul 2024"), or
  // today's date when the template asks for strftime_now.
  std::string llama3_date;
};

// jinja: the template string from the model (may be empty: then an error that says so
// and lists --chat-template choices). override_name: one of chat_template_names() to
// force a layout.
Result<ChatTemplate> detect_chat_template(const std::string& jinja, const std::string& override_name);

// For a model whose file has no template: the named template whose turn tokens the vocabulary
// holds as whole tokens (<start_of_turn>/<end_of_turn>: gemma, <|im_start|>/<|im_end|>: chatml,
// <|start_header_id|>/<|eot_id|>: llama3), or "" when none or more than one family matches.
std::string chat_template_of_vocabulary(const std::vector<std::string>& token_texts);

// "chatml, llama2, mistral, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7, llama3, llama3.1, gemma"
std::string chat_template_names();

// A rendered conversation: the prompt, and where the messages' contents are in it (what a
// user wrote; Tokenizer::encode_chat reads special-token text there as text).
struct RenderedChat {
  std::string text;
  std::vector<TextRange> contents;  // in order, disjoint
};

// Renders messages; add_generation_prompt appends the assistant header (ChatML, Llama-3, Gemma;
// the Llama-2 and Mistral templates have none). Errors where the reference template raises
// (roles out of order, a role the layout does not know).
Result<RenderedChat> render_chat_parts(const ChatTemplate& chat, const std::vector<ChatMessage>& messages,
                                       bool add_generation_prompt);
// The same, the text alone.
Result<std::string> render_chat(const ChatTemplate& chat, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt);

}  // namespace so
