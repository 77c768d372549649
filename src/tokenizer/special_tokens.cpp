#include "tokenizer/special_tokens.h"

#include <algorithm>
#include <cctype>

#include "tokenizer/unicode_text.h"

namespace so {
namespace {

bool is_word_byte(uint8_t byte) { return byte >= 0x80 || std::isalnum(byte) || byte == '_'; }

// Length of the whitespace character that ends at `end`, or 0.
size_t whitespace_before(std::string_view text, size_t end) {
  for (size_t length = 1; length <= 4 && length <= end; ++length) {
    const size_t start = end - length;
    if (utf8_valid_length_at(text, start) == length) {
      return unicode_is_python_space(utf8_decode_at(text, start, length)) ? length : 0;
    }
  }
  return 0;
}

// Length of the whitespace character that starts at `pos`, or 0.
size_t whitespace_at(std::string_view text, size_t pos) {
  const size_t length = utf8_valid_length_at(text, pos);
  return length != 0 && unicode_is_python_space(utf8_decode_at(text, pos, length)) ? length : 0;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& token) { return token.content.empty(); });
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<uint8_t>(tokens_[i].content[0])].push_back(i);
  }
}

const AddedToken* AddedTokenMatcher::match_at(std::string_view text, size_t pos, bool parse_special,
                                               std::span<const TextRange> literal) const {
  for (uint32_t index : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
    const AddedToken& token = tokens_[index];
    if (token.special && !parse_special) continue;
    if (text.compare(pos, token.content.size(), token.content) != 0) continue;
    if (token.special) {
      const size_t end = pos + token.content.size();
      const bool in_literal = std::any_of(literal.begin(), literal.end(),
                                          [&](const TextRange& range) { return pos < range.end && range.begin < end; });
      if (in_literal) continue;
    }
    if (token.single_word) {
      const size_t end = pos + token.content.size();
      const bool word_before = pos > 0 && is_word_byte(static_cast<uint8_t>(text[pos - 1]));
      const bool word_after = end < text.size() && is_word_byte(static_cast<uint8_t>(text[end]));
      // note: like Hugging Face, a longest match that fails this test is dropped, not
      // replaced by a shorter one.
      if (word_before || word_after) return nullptr;
    }
    return &token;
  }
  return nullptr;
}

std::vector<TextFragment> AddedTokenMatcher::split(std::string_view text, bool parse_special,
                                                   std::span<const TextRange> literal) const {
  std::vector<TextFragment> fragments;
  size_t raw_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* token = tokens_.empty() ? nullptr : match_at(text, pos, parse_special, literal);
    if (!token) {
      ++pos;
      continue;
    }
    size_t match_begin = pos;
    size_t match_end = pos + token->content.size();
    if (token->lstrip) {
      while (match_begin > raw_begin) {
        const size_t length = whitespace_before(text, match_begin);
        if (length == 0 || match_begin - length < raw_begin) break;
        match_begin -= length;
      }
    }
    if (token->rstrip) {
      while (match_end < text.size()) {
        const size_t length = whitespace_at(text, match_end);
        if (length == 0) break;
        match_end += length;
      }
    }
    if (match_begin > raw_begin) {
      fragments.push_back({text.substr(raw_begin, match_begin - raw_begin), -1, raw_begin});
    }
    fragments.push_back({text.substr(match_begin, match_end - match_begin), token->id, match_begin});
    pos = raw_begin = match_end;
  }
  if (raw_begin < text.size()) fragments.push_back({text.substr(raw_begin), -1, raw_begin});
  return fragments;
}

}  // namespace so
