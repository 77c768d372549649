#include "runtime/chat_prompt.h"

#include <atomic>

#include "base/log.h"

namespace so {

Result<RenderedChat> render_chat_prompt(const Engine& engine, const std::vector<ChatMessage>& messages,
                                        const std::string& template_override) {
  std::string jinja;
  if (const MetadataValue* value = engine.model().file.metadata.find("tokenizer.chat_template");
      value && value->is_string()) {
    jinja = value->as_string();
  }
  std::string name = template_override;
  if (jinja.empty() && name.empty()) {
    // note: llama.cpp falls back to ChatML for any model without a template; the vocabulary's
    // turn tokens say which layout the model was trained on.
    name = chat_template_of_vocabulary(engine.tokenizer().token_texts());
    static std::atomic<bool> warned{false};
    if (!name.empty() && !warned.exchange(true)) {
      SO_LOG(Warn, "the model file has no chat template; its vocabulary's turn tokens are ", name,
             "'s, so prompts use --chat-template ", name);
    }
  }
  SO_ASSIGN_OR_RETURN(ChatTemplate chat, detect_chat_template(jinja, name));
  return render_chat_parts(chat, messages, /*add_generation_prompt=*/true);
}

std::vector<int32_t> chat_prompt_tokens(const Engine& engine, const RenderedChat& prompt) {
  const Tokenizer& tokenizer = engine.tokenizer();
  return tokenizer.encode_chat(prompt.text, tokenizer.add_bos_by_default(), prompt.contents);
}

}  // namespace so
