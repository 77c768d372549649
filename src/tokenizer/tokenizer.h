// Text <-> token ids. Two algorithms behind one class:
//   - byte-level BPE (GPT-2, SmolLM2, Qwen2, Llama-3): pre-tokenizer regex, bytes mapped to
//     printable code points, merges by rank;
//   - SentencePiece-style BPE (Llama-2, Mistral, TinyLlama): spaces as U+2581, merges by
//     score (GGUF) or rank (tokenizer.json), byte fallback <0xXX> for unknown bytes.
// Built from GGUF metadata (tokenizer.ggml.*) or from a Hugging Face tokenizer.json.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "format/metadata.h"
#include "format/model_file.h"
#include "tokenizer/special_tokens.h"

namespace so {

enum class TokenizerKind { kByteLevelBpe, kSentencePieceBpe };

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // From a model: GGUF metadata, or tokenizer.json (+ tokenizer_config.json) beside the
  // safetensors.
  static Result<std::unique_ptr<Tokenizer>> from_model_file(const ModelFile& model);
  static Result<std::unique_ptr<Tokenizer>> from_gguf_metadata(const Metadata& metadata);
  // tokenizer_config_json may be empty.
  static Result<std::unique_ptr<Tokenizer>> from_hf_json(std::string_view tokenizer_json,
                                                         std::string_view tokenizer_config_json);

  // add_bos: prepend BOS when the model wants one (never twice).
  // parse_special: text like "<|im_start|>" becomes the special token instead of its bytes.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;
  // A chat prompt: special tokens are parsed except where they would overlap a `literal`
  // range (the messages' contents, sorted): text a user sent is text, whatever it spells
  // ("<|im_end|>" in a message opens no new turn). Elsewhere as encode(text, add_bos, true).
  virtual std::vector<int32_t> encode_chat(std::string_view text, bool add_bos,
                                           std::span<const TextRange> literal) const = 0;
  // Concatenated bytes of the tokens; may be invalid UTF-8 at a cut inside a character.
  // Special tokens appear as their text. SentencePiece: the space the encoder put in front
  // of a text fragment is dropped again, so decode(encode(x)) == x.
  virtual std::string decode(std::span<const int32_t> tokens) const = 0;
  // Bytes of one token as decode would produce them in the middle of a text (streaming).
  virtual std::string token_to_piece(int32_t token) const = 0;

  virtual TokenizerKind kind() const = 0;
  virtual int32_t n_vocab() const = 0;
  // The vocabulary as stored (for comparing a draft model's vocabulary with the target's).
  virtual const std::vector<std::string>& token_texts() const = 0;

  virtual int32_t bos_id() const = 0;  // -1 when none
  virtual int32_t eos_id() const = 0;
  virtual bool add_bos_by_default() const = 0;
  // EOS, EOT (<|im_end|>, <|eot_id|>, ...) and other end-of-generation tokens.
  virtual bool is_end_of_generation(int32_t token) const = 0;
  // The model's Jinja chat template (GGUF tokenizer.chat_template, or tokenizer_config.json /
  // chat_template.jinja beside tokenizer.json); empty when the model has none.
  virtual const std::string& chat_template() const = 0;
};

}  // namespace so
