// specoffload tokenize: one JSON array of token ids per stdin line.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "options.h"

namespace so::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  bool bos = false;
  bool no_special = false;
};

int run_tokenize(const TokenizeOptions& options) {
  auto tokenizer = load_tokenizer(resolve_model_path(options.model));
  if (!tokenizer.ok()) return report_error(tokenizer.status());
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::vector<int32_t> ids = (*tokenizer)->encode(line, options.bos, !options.no_special);
    std::cout << nlohmann::json(ids).dump() << "\n";
  }
  return 0;
}

}  // namespace

Command register_tokenize(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* command = app.add_subcommand("tokenize", "print the token ids of each stdin line as a JSON array");
  command->add_option("-m,--model", options->model, "GGUF file, Hugging Face model directory, or 'default'")
      ->required();
  command->add_flag("--bos", options->bos, "prepend the BOS token");
  command->add_flag("--no-special", options->no_special, "treat special-token text as plain text");
  return {command, [options] { return run_tokenize(*options); }};
}

}  // namespace so::cli
