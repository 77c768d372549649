// Test driver for the Python parity tests: JSON lines in, JSON lines out.
//
//   tokenizer_tool --gguf MODEL.gguf            tokenizer from GGUF metadata
//   tokenizer_tool --hf-dir DIR                 tokenizer.json (+ config files) in DIR
//   tokenizer_tool --tokenizer-json FILE [--tokenizer-config FILE]
//       stdin  {"text": "...", "bos": false, "special": true}   (bos/special optional; "hex": "68ff"
//              instead of "text" gives raw bytes, invalid UTF-8 included)
//       stdout {"ids": [...], "decoded": "...", "pieces": ["...", ...], "encode_seconds": 0.001}
//   tokenizer_tool --info ...                   one line: bos/eos ids, add_bos, n_vocab, end-of-generation ids
//   tokenizer_tool --chat
//       stdin  {"template": "...", "name": "", "messages": [{"role", "content"}], "add_generation_prompt": true,
//               "bos_token": "<s>", "eos_token": "</s>", "date_string": "26 Jul 2024"}   (the last three optional)
//       stdout {"text": "..."} or {"error": "..."}
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "base/mapped_file.h"
#include "format/model_file.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {

using json = nlohmann::json;

std::string dump_line(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

json render_chat_line(const json& request) {
  so::Result<so::ChatTemplate> chat =
      so::detect_chat_template(request.value("template", std::string()), request.value("name", std::string()));
  if (!chat.ok()) return {{"error", chat.status().to_string()}};
  if (request.contains("bos_token")) chat->bos_text = request.at("bos_token").get<std::string>();
  if (request.contains("eos_token")) chat->eos_text = request.at("eos_token").get<std::string>();
  if (request.contains("date_string") && !chat->llama3_date.empty()) {
    chat->llama3_date = request.at("date_string").get<std::string>();
  }
  std::vector<so::ChatMessage> messages;
  for (const json& message : request.at("messages")) {
    messages.push_back({message.at("role").get<std::string>(), message.at("content").get<std::string>()});
  }
  so::Result<std::string> text = so::render_chat(*chat, messages, request.value("add_generation_prompt", false));
  if (!text.ok()) return {{"error", text.status().to_string()}};
  return {{"text", *text}, {"default_system", chat->default_system}};
}

so::Result<std::unique_ptr<so::Tokenizer>> load_tokenizer(const std::string& gguf, const std::string& hf_dir,
                                                          const std::string& tokenizer_json,
                                                          const std::string& tokenizer_config) {
  if (!gguf.empty()) {
    SO_ASSIGN_OR_RETURN(so::ModelFile model, so::open_model_file(gguf));
    return so::Tokenizer::from_model_file(model);
  }
  if (!hf_dir.empty()) {  // the tokenizer files alone, no weights needed
    so::ModelFile model;
    model.format = so::ModelFormat::kSafetensors;
    model.path = hf_dir;
    return so::Tokenizer::from_model_file(model);
  }
  SO_ASSIGN_OR_RETURN(std::string json_text, so::read_text_file(tokenizer_json));
  std::string config_text;
  if (!tokenizer_config.empty()) {
    SO_ASSIGN_OR_RETURN(config_text, so::read_text_file(tokenizer_config));
  }
  return so::Tokenizer::from_hf_json(json_text, config_text);
}

json info_line(const so::Tokenizer& tokenizer) {
  json end_of_generation = json::array();
  for (int32_t id = 0; id < tokenizer.n_vocab(); ++id) {
    if (tokenizer.is_end_of_generation(id)) end_of_generation.push_back(id);
  }
  return {{"n_vocab", tokenizer.n_vocab()},
          {"bos", tokenizer.bos_id()},
          {"eos", tokenizer.eos_id()},
          {"add_bos", tokenizer.add_bos_by_default()},
          {"kind", tokenizer.kind() == so::TokenizerKind::kByteLevelBpe ? "byte-level" : "sentencepiece"},
          {"end_of_generation", end_of_generation},
          {"chat_template", tokenizer.chat_template()}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tokenizer test driver: JSON lines on stdin, JSON lines on stdout"};
  std::string gguf, hf_dir, tokenizer_json, tokenizer_config;
  bool bos = false, no_special = false, chat = false, info = false;
  auto* sources = app.add_option_group("source");
  sources->add_option("--gguf", gguf, "GGUF model file");
  sources->add_option("--hf-dir", hf_dir, "Hugging Face model directory");
  sources->add_option("--tokenizer-json", tokenizer_json, "tokenizer.json");
  sources->add_flag("--chat", chat, "render chat templates instead of tokenizing");
  sources->require_option(1);
  app.add_option("--tokenizer-config", tokenizer_config, "tokenizer_config.json (with --tokenizer-json)");
  app.add_flag("--bos", bos, "add BOS when the model wants one (per-line \"bos\" overrides)");
  app.add_flag("--no-special", no_special, "do not parse special tokens (per-line \"special\" overrides)");
  app.add_flag("--info", info, "print the tokenizer's ids and flags and exit");
  CLI11_PARSE(app, argc, argv);

  std::ios::sync_with_stdio(false);
  std::string line;
  if (chat) {
    while (std::getline(std::cin, line)) std::cout << dump_line(render_chat_line(json::parse(line))) << "\n";
    return 0;
  }
  auto tokenizer = load_tokenizer(gguf, hf_dir, tokenizer_json, tokenizer_config);
  if (!tokenizer.ok()) {
    std::cerr << "error: " << tokenizer.status().to_string() << "\n";
    return 1;
  }
  if (info) {
    std::cout << dump_line(info_line(**tokenizer)) << "\n";
    return 0;
  }
  while (std::getline(std::cin, line)) {
    const json request = json::parse(line);
    std::string text;
    if (request.contains("hex")) {
      const std::string hex = request.at("hex").get<std::string>();
      for (size_t i = 0; i + 1 < hex.size(); i += 2) text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    } else {
      text = request.at("text").get<std::string>();
    }
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids =
        (*tokenizer)->encode(text, request.value("bos", bos), request.value("special", !no_special));
    const double encode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    json pieces = json::array();
    for (int32_t id : ids) pieces.push_back((*tokenizer)->token_to_piece(id));
    std::cout << dump_line({{"ids", ids},
                            {"decoded", (*tokenizer)->decode(ids)},
                            {"pieces", pieces},
                            {"encode_seconds", encode_seconds}})
              << "\n";
    std::cout.flush();
  }
  return 0;
}
