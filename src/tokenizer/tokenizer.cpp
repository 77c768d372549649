// Tokenizer::from_model_file: GGUF metadata, or the Hugging Face files beside the weights.
#include <filesystem>

#include "base/mapped_file.h"
#include "tokenizer/tokenizer_json.h"

namespace so {
namespace {

// The file's text, or "" when it does not exist.
Result<std::string> read_optional_file(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return std::string();
  return read_text_file(path.string());
}

Result<std::unique_ptr<Tokenizer>> tokenizer_from_hf_directory(const std::string& directory) {
  const std::filesystem::path root(directory);
  const std::filesystem::path tokenizer_json = root / "tokenizer.json";
  std::error_code error;
  if (!std::filesystem::exists(tokenizer_json, error)) {
    return not_found("no tokenizer.json in ", directory,
                     "; this engine reads Hugging Face tokenizers from tokenizer.json (a SentencePiece "
                     "tokenizer.model alone is not supported: convert it with the transformers library)");
  }
  SO_ASSIGN_OR_RETURN(std::string tokenizer_text, read_text_file(tokenizer_json.string()));
  SO_ASSIGN_OR_RETURN(std::string config_text, read_optional_file(root / "tokenizer_config.json"));
  SO_ASSIGN_OR_RETURN(std::string generation_text, read_optional_file(root / "generation_config.json"));
  SO_ASSIGN_OR_RETURN(std::string template_text, read_optional_file(root / "chat_template.jinja"));
  return tokenizer_from_hf_files({tokenizer_text, config_text, generation_text, template_text});
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_model_file(const ModelFile& model) {
  if (model.format == ModelFormat::kGguf) {
    auto tokenizer = from_gguf_metadata(model.metadata);
    if (!tokenizer.ok()) return tokenizer.status().with_context(model.path);
    return tokenizer;
  }
  auto tokenizer = tokenizer_from_hf_directory(model.path);
  if (!tokenizer.ok()) return tokenizer.status().with_context(str_cat("reading the tokenizer of ", model.path));
  return tokenizer;
}

}  // namespace so
