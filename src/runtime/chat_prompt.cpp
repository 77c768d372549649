#include "runtime/chat_prompt.h"

namespace so {

Result<std::string> render_chat_prompt(const Engine& engine, const std::vector<ChatMessage>& messages,
                                       const std::string& template_override) {
  std::string jinja;
  if (const MetadataValue* value = engine.model().file.metadata.find("tokenizer.chat_template");
      value && value->is_string()) {
    jinja = value->as_string();
  }
  SO_ASSIGN_OR_RETURN(ChatTemplate chat, detect_chat_template(jinja, template_override));
  return render_chat(chat, messages, /*add_generation_prompt=*/true);
}

}  // namespace so
