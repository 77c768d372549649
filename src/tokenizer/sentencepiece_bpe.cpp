// SentencePiece-style BPE (Llama-2, Mistral, TinyLlama): pieces are UTF-8 text with spaces
// written as "▁"; symbols start as characters; characters outside the vocabulary fall back
// to <0xXX> byte tokens. Tokens decode with "▁" -> " " and byte tokens -> their byte.
#include <algorithm>
#include <array>

#include "tokenizer/tokenizer_model.h"
#include "tokenizer/unicode_text.h"

namespace so {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

class SentencePieceBpeTokenizer final : public BpeTokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> create(TokenizerSpec spec) {
    std::unique_ptr<SentencePieceBpeTokenizer> tokenizer(new SentencePieceBpeTokenizer(std::move(spec)));
    SO_TRY(tokenizer->prepare());
    tokenizer->prepare_bytes();
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }

 private:
  explicit SentencePieceBpeTokenizer(TokenizerSpec spec) : BpeTokenizer(std::move(spec)) {}

  void prepare_bytes() {
    byte_tokens_.fill(-1);
    const size_t n_vocab = spec_.token_texts.size();
    token_bytes_.resize(n_vocab);
    for (size_t id = 0; id < n_vocab; ++id) {
      const std::string& text = spec_.token_texts[id];
      const int byte = byte_token_value(text);
      if (spec_.token_types[id] == TokenType::kByte && byte >= 0) {
        byte_tokens_[byte] = static_cast<int32_t>(id);
        token_bytes_[id] = std::string(1, static_cast<char>(byte));
      } else if (token_is_added_[id]) {
        token_bytes_[id] = text;
      } else {
        std::string bytes;
        size_t pos = 0;
        for (size_t found; (found = text.find(kSpaceMarker, pos)) != std::string::npos;
             pos = found + kSpaceMarker.size()) {
          bytes.append(text, pos, found - pos);
          bytes += ' ';
        }
        bytes.append(text, pos);
        token_bytes_[id] = std::move(bytes);
      }
    }
  }

  std::vector<BpeSymbol> initial_symbols(std::string_view piece) const override {
    std::vector<BpeSymbol> symbols;
    symbols.reserve(piece.size());
    bool previous_unknown = false;
    for (uint32_t pos = 0; pos < piece.size();) {
      // note: characters are counted from their lead bytes alone, as llama.cpp counts them,
      // so invalid UTF-8 becomes the same symbols (and byte-fallback tokens) there and here.
      const uint32_t length = static_cast<uint32_t>(
          std::min<size_t>(utf8_length_by_lead_nibble(static_cast<uint8_t>(piece[pos])), piece.size() - pos));
      const int32_t token = find_token(piece.substr(pos, length));
      const bool unknown =
          token < 0 && !spec_.merge_by_score && !(spec_.byte_fallback && all_bytes_known(piece.substr(pos, length)));
      if (token >= 0 || spec_.merge_by_score) {
        // llama.cpp keeps an unknown character as one symbol: it may still merge by text,
        // and falls back to bytes only if it stays alone.
        symbols.push_back({token, pos, pos + length});
      } else if (!unknown) {
        for (uint32_t i = pos; i < pos + length; ++i) {
          symbols.push_back({byte_tokens_[static_cast<uint8_t>(piece[i])], i, i + 1});
        }
      } else if (spec_.fuse_unk && previous_unknown) {
        symbols.back().end = pos + length;
      } else {
        symbols.push_back({spec_.unk_id, pos, pos + length});
      }
      previous_unknown = unknown;
      pos += length;
    }
    bpe_link_symbols(symbols);
    return symbols;
  }

  bool all_bytes_known(std::string_view bytes) const {
    for (char byte : bytes) {
      if (byte_tokens_[static_cast<uint8_t>(byte)] < 0) return false;
    }
    return true;
  }

  void append_untokenized(std::string_view bytes, std::vector<int32_t>& out) const override {
    for (char byte : bytes) {
      const int32_t token = byte_tokens_[static_cast<uint8_t>(byte)];
      if (token >= 0) {
        out.push_back(token);
      } else if (spec_.unk_id >= 0) {
        out.push_back(spec_.unk_id);
      }
    }
  }

  std::array<int32_t, 256> byte_tokens_{};  // byte -> its <0xXX> token, -1 if none
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_sentencepiece_bpe(TokenizerSpec spec) {
  return SentencePieceBpeTokenizer::create(std::move(spec));
}

}  // namespace so
