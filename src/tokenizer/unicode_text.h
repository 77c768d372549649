// UTF-8 helpers for the tokenizer: walking code points, validity, and the whitespace set
// that Python's str.strip() uses (chat templates call .strip() and |trim).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace so {

// Length of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
size_t utf8_sequence_length(uint8_t lead);
// The same as llama.cpp's SentencePiece tokenizer counts it, from the lead's top four bits
// alone (0xF8-0xFF count 4), so invalid text splits into the symbols it splits it into.
size_t utf8_length_by_lead_nibble(uint8_t lead);

// Length of the valid UTF-8 sequence at text[pos], or 0 when the bytes there are not a
// well-formed sequence (overlong, surrogate, truncated, > U+10FFFF).
size_t utf8_valid_length_at(std::string_view text, size_t pos);

// Code point of the valid sequence at text[pos] of length `length`.
uint32_t utf8_decode_at(std::string_view text, size_t pos, size_t length);

void utf8_append(std::string& out, uint32_t code_point);

// Text as llama.cpp's byte-level BPE reads it: decoded leniently (any lead byte with its
// continuation bytes, overlong forms and surrogates included) and encoded again, each byte
// that starts no such sequence becoming U+FFFD. Valid UTF-8 comes back unchanged.
std::string utf8_lenient_repair(std::string_view text);

// White_Space code points as Python's str.isspace() sees them.
bool unicode_is_python_space(uint32_t code_point);

// Python's str.strip() with no arguments (Jinja's |trim does the same).
std::string_view unicode_strip_python(std::string_view text);

}  // namespace so
