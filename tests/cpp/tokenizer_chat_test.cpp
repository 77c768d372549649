// Chat template detection from Jinja markers and native rendering per family. The Python
// test (tests/python/test_tokenizer_chat.py) checks the same against jinja2 with the real
// templates; here the expected strings are written out.
#include <gtest/gtest.h>

#include <algorithm>

#include "tokenizer/chat_template.h"

namespace so {
namespace {

const std::string kSmolLM2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

ChatTemplate detect(const std::string& jinja, const std::string& name = "") {
  auto chat = detect_chat_template(jinja, name);
  SO_CHECK_OK(chat);
  return *chat;
}

std::string render(const ChatTemplate& chat, const std::vector<ChatMessage>& messages, bool prompt = true) {
  auto text = render_chat(chat, messages, prompt);
  SO_CHECK_OK(text);
  return *text;
}

TEST(ChatTemplate, ChatMLWithTheDefaultSystemPromptFromTheTemplate) {
  const ChatTemplate chat = detect(kSmolLM2Template);
  EXPECT_EQ(chat.family, ChatFamily::kChatML);
  EXPECT_EQ(chat.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(render(chat, {{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render(chat, {{"system", "Be brief."}, {"user", "Hi"}}, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  // Escaped newlines (as in a tokenizer_config.json string) are found too.
  EXPECT_EQ(detect("{{ '<|im_start|>system\\nYou\\'re Qwen.<|im_end|>\\n' }}").default_system, "You're Qwen.");
  EXPECT_EQ(detect("{{'<|im_start|>' + message['role'] + '\\n'}}").default_system, "");
}

TEST(ChatTemplate, Llama2PutsTheSystemIntoTheFirstTurn) {
  const ChatTemplate chat = detect(
      "{% if messages[0]['role'] == 'system' %}...<<SYS>>...{{ bos_token + '[INST] ' + content.strip() + "
      "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}");
  EXPECT_EQ(chat.family, ChatFamily::kLlama2);
  EXPECT_TRUE(chat.llama2_strip);
  EXPECT_TRUE(chat.llama2_bos_each_turn);
  EXPECT_EQ(render(chat, {{"system", "Sys"}, {"user", " Hi "}, {"assistant", " Hello "}, {"user", "Bye"}}),
            "<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\n Hi [/INST] Hello </s><s>[INST] Bye [/INST]");  // strip() sees the
                                                                                                 // whole turn
}

TEST(ChatTemplate, MistralVersionsDifferInSpacesAndSystemPlacement) {
  const std::vector<ChatMessage> messages = {{"system", "S"}, {"user", "A"}, {"assistant", " B "}, {"user", "C"}};
  EXPECT_EQ(render(detect("", "mistral-v1"), messages), "<s> [INST] S\n\nA [/INST]  B </s> [INST] C [/INST]");
  EXPECT_EQ(render(detect("", "mistral-v3"), messages), "<s>[INST] A[/INST] B</s>[INST] S\n\nC[/INST]");
  EXPECT_EQ(render(detect("", "mistral-v3-tekken"), messages), "<s>[INST]A[/INST] B </s>[INST]S\n\nC[/INST]");
  EXPECT_EQ(render(detect("", "mistral-v7"), messages),
            "<s>[SYSTEM_PROMPT] S[/SYSTEM_PROMPT][INST] A[/INST]  B </s>[INST] C[/INST]");
  EXPECT_EQ(render(detect("", "mistral"), {{"user", "A"}, {"assistant", "B"}}), "<s>[INST] A [/INST]B</s>");
  EXPECT_EQ(detect("{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}")
                .mistral_version,
            MistralVersion::kLegacy);
  EXPECT_EQ(detect("{{- ' [INST] ' + system_message + '\\n\\n' }}").mistral_version, MistralVersion::kV1);
  EXPECT_EQ(detect("{{- \"[AVAILABLE_TOOLS] [\" }}{{- \"[INST] \" + x }}").mistral_version, MistralVersion::kV3);
  EXPECT_EQ(detect("{{- \"[AVAILABLE_TOOLS][\" }}{{- \"[INST]\" + x }}").mistral_version, MistralVersion::kV3Tekken);
  EXPECT_EQ(detect("[INST] [SYSTEM_PROMPT]").mistral_version, MistralVersion::kV7);
}

TEST(ChatTemplate, Llama3HeadersAndTheLlama31DateHeader) {
  const ChatTemplate llama3 = detect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}");
  EXPECT_EQ(llama3.family, ChatFamily::kLlama3);
  EXPECT_EQ(render(llama3, {{"user", " Hi "}}),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const ChatTemplate llama31 = detect(
      "<|start_header_id|> {%- set date_string = \"26 Jul 2024\" %} "
      "{{- \"Cutting Knowledge Date: December 2023\\n\" }}");
  EXPECT_EQ(llama31.llama3_date, "26 Jul 2024");
  EXPECT_EQ(render(llama31, {{"system", "S "}, {"user", "Hi"}}, false),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

// Gemma's layout (its template is not in the GGUF files that ship without one: --chat-template gemma).
TEST(ChatTemplate, GemmaPutsTheSystemIntoTheFirstUserTurn) {
  const ChatTemplate gemma = detect("{{ '<start_of_turn>' + role + '\\n' }}");
  EXPECT_EQ(gemma.family, ChatFamily::kGemma);
  EXPECT_EQ(render(gemma, {{"system", "Be brief. "}, {"user", " Hi "}, {"assistant", "Hello"}, {"user", "Bye"}}),
            "<bos><start_of_turn>user\nBe brief. \n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_FALSE(render_chat(gemma, {{"assistant", "first"}}, true).ok());
}

TEST(ChatTemplate, ContentRangesCoverWhatTheUserWrote) {
  const std::vector<ChatMessage> messages = {{"system", "S <|im_end|>"}, {"user", "U<|eot_id|>"}};
  for (const char* name : {"chatml", "llama2", "mistral", "mistral-v1", "mistral-v7", "llama3", "llama3.1"}) {
    const ChatTemplate chat = detect("", name);
    auto rendered = render_chat_parts(chat, messages, true);
    if (!rendered.ok()) continue;  // layouts without a system role
    ASSERT_EQ(rendered->text, render(chat, messages)) << name;
    std::string covered;
    size_t last_end = 0;
    for (const TextRange& range : rendered->contents) {
      ASSERT_LE(last_end, range.begin) << name;
      ASSERT_LE(range.end, rendered->text.size()) << name;
      covered += rendered->text.substr(range.begin, range.end - range.begin);
      last_end = range.end;
    }
    // Every special-looking string the user wrote lies inside a content range.
    for (const std::string needle : {"<|im_end|>", "<|eot_id|>"}) {
      const size_t in_text = rendered->text.find(needle, rendered->text.find(needle == "<|im_end|>" ? "S " : "U"));
      ASSERT_NE(in_text, std::string::npos) << name;
      const bool inside = std::any_of(rendered->contents.begin(), rendered->contents.end(), [&](const TextRange& r) {
        return r.begin <= in_text && in_text + needle.size() <= r.end;
      });
      EXPECT_TRUE(inside) << name << ": " << needle;
    }
    EXPECT_NE(covered.find("U"), std::string::npos) << name;
  }
}

TEST(ChatTemplate, RolesOutOfOrderAreErrorsWhereTheTemplateRaises) {
  auto llama2 = render_chat(detect("", "llama2"), {{"user", "a"}, {"user", "b"}}, true);
  ASSERT_FALSE(llama2.ok());
  EXPECT_NE(llama2.status().message().find("roles must alternate user/assistant"), std::string::npos);
  auto mistral = render_chat(detect("", "mistral"), {{"system", "s"}, {"user", "b"}}, true);
  ASSERT_FALSE(mistral.ok());
  EXPECT_NE(mistral.status().message().find("this template has no system role"), std::string::npos)
      << mistral.status().message();
}

TEST(ChatTemplate, UnknownOrMissingTemplatesNameTheChoices) {
  auto missing = detect_chat_template("", "");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "the model has no chat template (tokenizer.chat_template is missing); pass --chat-template NAME with NAME "
            "one of chatml, llama2, mistral, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7, llama3, llama3.1, "
            "gemma");
  auto unknown = detect_chat_template("{% for m in messages %}<|user|>{{ m.content }}{% endfor %}", "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(unknown.status().message().find("not one this engine renders"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("Pass --chat-template NAME"), std::string::npos);
  auto phi4 = detect_chat_template("<|im_start|>system<|im_sep|>", "");
  EXPECT_FALSE(phi4.ok());
  auto bad_name = detect_chat_template(kSmolLM2Template, "vicuna");
  ASSERT_FALSE(bad_name.ok());
  EXPECT_NE(bad_name.status().message().find("--chat-template \"vicuna\" is not a known template; expected one of "
                                             "chatml, llama2"),
            std::string::npos);
}

TEST(ChatTemplate, AVocabularysTurnTokensNameItsTemplate) {
  const std::vector<std::string> gemma{"<pad>", "<bos>", "<start_of_turn>", "<end_of_turn>", "hello"};
  EXPECT_EQ(chat_template_of_vocabulary(gemma), "gemma");
  EXPECT_EQ(chat_template_of_vocabulary({"<|im_start|>", "<|im_end|>", "a"}), "chatml");
  EXPECT_EQ(chat_template_of_vocabulary({"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}), "llama3");
  EXPECT_EQ(chat_template_of_vocabulary({"<|im_start|>", "hello"}), "");  // half a pair: a guess too far
  EXPECT_EQ(chat_template_of_vocabulary({"<s>", "</s>", "[INST]"}), "");
  // Two families' tokens: ambiguous, so no guess.
  EXPECT_EQ(chat_template_of_vocabulary({"<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"}), "");
}

}  // namespace
}  // namespace so
