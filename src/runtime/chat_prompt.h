// A conversation rendered with the model's chat template (or a named one).
#pragma once

#include <string>
#include <vector>

#include "runtime/engine.h"
#include "tokenizer/chat_template.h"

namespace so {

// template_override: "" (the model's own), or chatml, llama2, mistral, llama3. Adds the
// assistant's generation prompt.
Result<RenderedChat> render_chat_prompt(const Engine& engine, const std::vector<ChatMessage>& messages,
                                        const std::string& template_override = "");
// Its tokens: the template's special tokens parsed, the messages' contents read as text.
std::vector<int32_t> chat_prompt_tokens(const Engine& engine, const RenderedChat& prompt);

}  // namespace so
