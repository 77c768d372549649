// Internal: what the GGUF and tokenizer.json loaders read (TokenizerSpec), and the BPE
// tokenizer built from it. The two kinds differ in how a piece becomes initial symbols and
// how a token becomes bytes again (byte_level_bpe.cpp, sentencepiece_bpe.cpp); the merge
// loop, special tokens, BOS and decoding live here and in tokenizer_model.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"

namespace so {

// Where the encoder puts a space prefix ("▁") in front of a text fragment, so that decode
// can take exactly that space away again.
enum class SpacePrefix { kNone, kFirstFragment, kEveryFragment };

struct TokenizerSpec {
  TokenizerKind kind = TokenizerKind::kByteLevelBpe;
  std::vector<std::string> token_texts;                     // (n_vocab) as stored: GPT-2-mapped, or with "▁"
  std::vector<TokenType> token_types;                       // (n_vocab)
  std::vector<float> token_scores;                          // (n_vocab) or empty; read when merge_by_score
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order, as stored
  // llama.cpp's SentencePiece rule: any neighbouring pair whose concatenation is a token
  // merges, highest token score first. Otherwise: listed merges, lowest rank first.
  bool merge_by_score = false;
  bool ignore_merges = false;  // a piece that is itself a token is emitted whole
  bool byte_fallback = true;   // SentencePiece: unknown characters -> <0xXX> tokens
  bool fuse_unk = false;       // consecutive unknown characters -> one unk token
  int32_t unk_id = -1;
  PreTokenizer pre_tokenizer;  // normalizer and pre-tokenizer steps
  SpacePrefix space_prefix = SpacePrefix::kNone;
  std::vector<AddedToken> added_tokens;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  std::vector<int32_t> end_of_generation_ids;  // besides eos_id
  bool add_bos = false;
  std::string chat_template;
};

struct TokenTextHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using TokenTextMap = std::unordered_map<std::string, int32_t, TokenTextHash, std::equal_to<>>;

class BpeTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    return encode_split(text, add_bos, parse_special, {});
  }
  std::vector<int32_t> encode_chat(std::string_view text, bool add_bos,
                                   std::span<const TextRange> literal) const override {
    return encode_split(text, add_bos, true, literal);
  }
  std::string decode(std::span<const int32_t> tokens) const override;
  std::string token_to_piece(int32_t token) const override;

  TokenizerKind kind() const override { return spec_.kind; }
  int32_t n_vocab() const override { return static_cast<int32_t>(spec_.token_texts.size()); }
  const std::vector<std::string>& token_texts() const override { return spec_.token_texts; }
  int32_t bos_id() const override { return spec_.bos_id; }
  int32_t eos_id() const override { return spec_.eos_id; }
  bool add_bos_by_default() const override { return spec_.add_bos; }
  bool is_end_of_generation(int32_t token) const override;
  const std::string& chat_template() const override { return spec_.chat_template; }

 protected:
  explicit BpeTokenizer(TokenizerSpec spec);
  // Builds maps shared by both kinds; subclasses call it first, then fill token_bytes_.
  Status prepare();

  // Initial symbols of one piece, linked, tokens set where the unit is a token.
  virtual std::vector<BpeSymbol> initial_symbols(std::string_view piece) const = 0;
  // Tokens for a symbol the merges left without a token (byte fallback or unk).
  virtual void append_untokenized(std::string_view bytes, std::vector<int32_t>& out) const = 0;
  // The token a whole piece is stored as, or -1 (for ignore_merges).
  virtual int32_t whole_piece_token(std::string_view piece) const { return find_token(piece); }
  // Whether text fragments go through utf8_lenient_repair first (byte-level BPE, as llama.cpp).
  virtual bool repairs_invalid_utf8() const { return false; }

  int32_t find_token(std::string_view text) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  std::vector<int32_t> encode_split(std::string_view text, bool add_bos, bool parse_special,
                                    std::span<const TextRange> literal) const;

  TokenizerSpec spec_;
  TokenTextMap token_ids_;                  // stored text -> id
  BpePairTable merge_ranks_;                // (left, right) -> (rank, merged)
  std::vector<std::string> token_bytes_;    // (n_vocab) bytes each token decodes to
  std::vector<uint8_t> token_is_added_;     // (n_vocab) 1 for added/special tokens
  std::vector<uint8_t> end_of_generation_;  // (n_vocab)
  AddedTokenMatcher added_tokens_;
};

// Checks the spec and builds the tokenizer of its kind.
Result<std::unique_ptr<Tokenizer>> make_byte_level_bpe(TokenizerSpec spec);
Result<std::unique_ptr<Tokenizer>> make_sentencepiece_bpe(TokenizerSpec spec);
Result<std::unique_ptr<Tokenizer>> make_tokenizer(TokenizerSpec spec);

// "<0x41>" -> 0x41; -1 when the text is not a byte token.
int byte_token_value(std::string_view text);
// Token texts that end a turn in common chat formats (<|im_end|>, <|eot_id|>, ...).
bool is_end_of_turn_text(std::string_view text);

}  // namespace so
