// Byte-level BPE (GPT-2, SmolLM2, Qwen2, Llama-3): every byte of a piece starts as the token
// of its GPT-2-mapped character; merges by rank; tokens decode through the inverse mapping.
#include <array>

#include "base/log.h"
#include "tokenizer/byte_mapping.h"
#include "tokenizer/tokenizer_model.h"

namespace so {
namespace {

class ByteLevelBpeTokenizer final : public BpeTokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> create(TokenizerSpec spec) {
    std::unique_ptr<ByteLevelBpeTokenizer> tokenizer(new ByteLevelBpeTokenizer(std::move(spec)));
    SO_TRY(tokenizer->prepare());
    tokenizer->prepare_bytes();
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }

 private:
  explicit ByteLevelBpeTokenizer(TokenizerSpec spec) : BpeTokenizer(std::move(spec)) {}

  void prepare_bytes() {
    int n_missing = 0;
    for (int byte = 0; byte < 256; ++byte) {
      std::string mapped;
      mapped += byte_mapping_encode(std::string(1, static_cast<char>(byte)));
      byte_tokens_[byte] = find_token(mapped);
      if (byte_tokens_[byte] < 0) ++n_missing;
    }
    if (n_missing > 0) {
      // note: usual for bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5-0xFF), hence only info;
      // invalid UTF-8 in text becomes U+FFFD before it reaches them (as in llama.cpp).
      SO_LOG(Info, "tokenizer: ", n_missing, " of the 256 byte tokens are missing from the byte-level vocabulary");
    }
    token_bytes_.resize(spec_.token_texts.size());
    for (size_t id = 0; id < token_bytes_.size(); ++id) {
      const std::string& text = spec_.token_texts[id];
      if (token_is_added_[id]) {
        token_bytes_[id] = text;  // special tokens are stored as their literal text
      } else if (auto bytes = byte_mapping_decode(text)) {
        token_bytes_[id] = std::move(*bytes);
      } else {
        token_bytes_[id] = text;
      }
    }
  }

  std::vector<BpeSymbol> initial_symbols(std::string_view piece) const override {
    std::vector<BpeSymbol> symbols(piece.size());
    for (uint32_t i = 0; i < piece.size(); ++i) {
      symbols[i].token = byte_tokens_[static_cast<uint8_t>(piece[i])];
      symbols[i].begin = i;
      symbols[i].end = i + 1;
    }
    bpe_link_symbols(symbols);
    return symbols;
  }

  void append_untokenized(std::string_view bytes, std::vector<int32_t>& out) const override {
    for (char byte : bytes) {
      const int32_t token = byte_tokens_[static_cast<uint8_t>(byte)];
      if (token >= 0) out.push_back(token);
    }
  }

  int32_t whole_piece_token(std::string_view piece) const override { return find_token(byte_mapping_encode(piece)); }
  bool repairs_invalid_utf8() const override { return true; }

  std::array<int32_t, 256> byte_tokens_{};  // byte -> token of its mapped character, -1 if none
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_byte_level_bpe(TokenizerSpec spec) {
  return ByteLevelBpeTokenizer::create(std::move(spec));
}

}  // namespace so
