#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/unicode_text.h"

namespace so {
namespace {

// Per-thread match state: match data big enough for any of our patterns, and a JIT stack
// that can grow for long inputs (the default 32 KiB machine stack is too small for a
// megabyte of whitespace).
struct RegexScratch {
  pcre2_match_data* match_data = pcre2_match_data_create(64, nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
  pcre2_match_context* match_context = pcre2_match_context_create(nullptr);

  RegexScratch() { pcre2_jit_stack_assign(match_context, nullptr, jit_stack); }
  ~RegexScratch() {
    pcre2_match_context_free(match_context);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_data_free(match_data);
  }
};

RegexScratch& regex_scratch() {
  thread_local RegexScratch scratch;
  return scratch;
}

}  // namespace

Result<std::shared_ptr<const TokenizerRegex>> TokenizerRegex::compile(std::string_view pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    return invalid_argument("pre-tokenizer regex ", quote_for_message(pattern, 200), " does not compile: ",
                            reinterpret_cast<const char*>(message), " at offset ", error_offset,
                            "; expected a PCRE2/Oniguruma-compatible pattern");
  }
  // note: JIT failure is not an error; the interpreter gives the same matches, slower.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::shared_ptr<TokenizerRegex> regex(new TokenizerRegex());
  regex->pattern_ = std::string(pattern);
  regex->code_ = code;
  return std::shared_ptr<const TokenizerRegex>(std::move(regex));
}

TokenizerRegex::~TokenizerRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<RegexMatch> TokenizerRegex::find_all(std::string_view text) const {
  std::vector<RegexMatch> matches;
  RegexScratch& scratch = regex_scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset < text.size()) {
    const int rc = pcre2_match(static_cast<const pcre2_code*>(code_), subject, text.size(), offset,
                               PCRE2_NO_UTF_CHECK, scratch.match_data, scratch.match_context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    // A match error (e.g. a resource limit) on valid input is a bug in our setup.
    SO_CHECK(rc >= 0, "PCRE2 match failed with code ", rc, " for pattern ", quote_for_message(pattern_, 80));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.match_data);
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      matches.push_back({begin, end});
      offset = end;
    } else {  // empty match: step over one character
      offset = begin + utf8_sequence_length(static_cast<uint8_t>(text[begin]));
    }
  }
  return matches;
}

}  // namespace so
