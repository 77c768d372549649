// Small string helpers shared by every layer.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace so {

// str_cat("n_heads=", 8, " dim=", 64) -> "n_heads=8 dim=64".
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

std::vector<std::string> str_split(std::string_view text, char separator);
bool str_starts_with(std::string_view text, std::string_view prefix);
bool str_ends_with(std::string_view text, std::string_view suffix);
std::string str_trim(std::string_view text);

// "24G", "512M", "1.5K", "1000" -> bytes (binary units). nullopt when malformed.
std::optional<uint64_t> parse_byte_size(std::string_view text);
// 1536 -> "1.50 KiB"
std::string format_bytes(double bytes);
// (3.14159, 2) -> "3.14"
std::string format_double(double value, int decimals);

// Printable form of arbitrary bytes for error messages: quotes and escapes control and
// non-UTF-8 bytes, truncates after max_chars.
std::string quote_for_message(std::string_view bytes, size_t max_chars = 64);

// Backslash escapes as llama.cpp's --escape reads them: \n \t \r \\ \" \'; any other
// backslash stays as it is.
std::string process_escapes(std::string_view text);

}  // namespace so
