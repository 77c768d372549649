// Special and added tokens: strings like "<|im_start|>" that are cut out of the text
// before pre-tokenization and become one token each.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace so {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  // true: matched only when encode(parse_special=true) (GGUF CONTROL/UNKNOWN, HF special);
  // false: always matched (GGUF USER_DEFINED, HF non-special added tokens).
  bool special = true;
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // only matched when not inside a word
};

// Bytes [begin, end) of a text.
struct TextRange {
  size_t begin = 0;
  size_t end = 0;
};

struct TextFragment {
  std::string_view text;  // raw text (token < 0), a view into the input
  int32_t token = -1;     // the added token, or -1 for raw text
  size_t offset = 0;      // byte offset of the fragment in the input
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Leftmost-longest matching, as Hugging Face's added-vocabulary split does. No special
  // token is matched where it would overlap a `literal` range (ranges sorted, disjoint).
  std::vector<TextFragment> split(std::string_view text, bool parse_special,
                                  std::span<const TextRange> literal = {}) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // The longest token (of those allowed) that matches at `pos`, or nullptr.
  const AddedToken* match_at(std::string_view text, size_t pos, bool parse_special,
                             std::span<const TextRange> literal) const;

  std::vector<AddedToken> tokens_;                        // longest first
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices into tokens_
};

}  // namespace so
