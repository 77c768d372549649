// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for pre-tokenizer splits.
// Patterns come from GGUF pre-tokenizer presets or a tokenizer.json Split step; both are
// written in Oniguruma syntax, which PCRE2 accepts for everything these patterns use
// (\p{L}, \p{N}, (?!...), (?i:...), classes).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace so {

struct RegexMatch {
  size_t begin = 0;  // byte offsets into the searched text
  size_t end = 0;
};

class TokenizerRegex {
 public:
  // Error names the pattern and PCRE2's message with the offset it points at.
  static Result<std::shared_ptr<const TokenizerRegex>> compile(std::string_view pattern);
  ~TokenizerRegex();
  TokenizerRegex(const TokenizerRegex&) = delete;
  TokenizerRegex& operator=(const TokenizerRegex&) = delete;

  // Successive non-overlapping, non-empty matches in `text`, which must be valid UTF-8.
  // Safe to call from several threads at once.
  std::vector<RegexMatch> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  TokenizerRegex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*; void keeps pcre2.h out of this header
};

}  // namespace so
