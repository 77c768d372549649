#include "runtime/chat_prompt.h"

namespace so {

Result<RenderedChat> render_chat_prompt(const Engine& engine, const std::vector<ChatMessage>& messages,
                                        const std::string& template_override) {
  std::string jinja;
  if (const MetadataValue* value = engine.model().file.metadata.find("tokenizer.chat_template");
      value && value->is_string()) {
    jinja = value->as_string();
  }
  SO_ASSIGN_OR_RETURN(ChatTemplate chat, detect_chat_template(jinja, template_override));
  return render_chat_parts(chat, messages, /*add_generation_prompt=*/true);
}

std::vector<int32_t> chat_prompt_tokens(const Engine& engine, const RenderedChat& prompt) {
  const Tokenizer& tokenizer = engine.tokenizer();
  return tokenizer.encode_chat(prompt.text, tokenizer.add_bos_by_default(), prompt.contents);
}

}  // namespace so
