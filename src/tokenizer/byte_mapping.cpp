#include "tokenizer/byte_mapping.h"

#include <array>

#include "tokenizer/unicode_text.h"

namespace so {
namespace {

struct ByteMappingTables {
  std::array<uint32_t, 256> code_point_of_byte{};
  std::array<int16_t, 324> byte_of_code_point{};  // code points 0..323 (256 + 68 - 1); -1 if unmapped

  ByteMappingTables() {
    byte_of_code_point.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t byte = 0; byte < 256; ++byte) {
      const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
      const uint32_t code_point = printable ? byte : next_extra++;
      code_point_of_byte[byte] = code_point;
      byte_of_code_point[code_point] = static_cast<int16_t>(byte);
    }
  }
};

const ByteMappingTables& byte_mapping_tables() {
  static const ByteMappingTables tables;
  return tables;
}

}  // namespace

uint32_t byte_mapping_code_point(uint8_t byte) { return byte_mapping_tables().code_point_of_byte[byte]; }

std::optional<uint8_t> byte_mapping_byte(uint32_t code_point) {
  const auto& tables = byte_mapping_tables();
  if (code_point >= tables.byte_of_code_point.size() || tables.byte_of_code_point[code_point] < 0) {
    return std::nullopt;
  }
  return static_cast<uint8_t>(tables.byte_of_code_point[code_point]);
}

std::string byte_mapping_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(out, byte_mapping_code_point(static_cast<uint8_t>(c)));
  return out;
}

std::optional<std::string> byte_mapping_decode(std::string_view mapped_text) {
  std::string out;
  out.reserve(mapped_text.size());
  for (size_t pos = 0; pos < mapped_text.size();) {
    const size_t length = utf8_valid_length_at(mapped_text, pos);
    if (length == 0) return std::nullopt;
    const auto byte = byte_mapping_byte(utf8_decode_at(mapped_text, pos, length));
    if (!byte) return std::nullopt;
    out += static_cast<char>(*byte);
    pos += length;
  }
  return out;
}

}  // namespace so
