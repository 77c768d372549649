// GPT-2's reversible byte <-> code point mapping. Byte-level BPE vocabularies store every
// byte as a printable character: printable Latin-1 bytes map to themselves, the other 68
// (control bytes, space, 0x7F-0xA0, 0xAD) to U+0100 upwards in byte order. So a space is
// stored as "Ġ" (U+0120) and a newline as "Ċ" (U+010A).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace so {

uint32_t byte_mapping_code_point(uint8_t byte);
// The byte a mapped code point stands for; nullopt for code points outside the mapping.
std::optional<uint8_t> byte_mapping_byte(uint32_t code_point);

// "hi there" -> "hiĠthere"
std::string byte_mapping_encode(std::string_view bytes);
// "hiĠthere" -> "hi there"; nullopt when the text holds a character outside the mapping
// (such tokens, e.g. some special tokens, are then decoded as their literal text).
std::optional<std::string> byte_mapping_decode(std::string_view mapped_text);

}  // namespace so
