// open_model_file: decides what kind of model a path holds.
#include "format/model_file.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/file_checks.h"

namespace so {
namespace {

// The first bytes of a file: enough for either format's magic and the start of a
// safetensors header.
std::string read_file_start(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string start(max_bytes, '\0');
  in.read(start.data(), static_cast<std::streamsize>(max_bytes));
  start.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return start;
}

// A safetensors file starts with a little-endian u64 header length that fits in the file,
// followed by the JSON header's '{'.
bool looks_like_safetensors(std::string_view start, uint64_t file_size) {
  if (start.size() < 9 || start[8] != '{') return false;
  uint64_t header_length;
  std::memcpy(&header_length, start.data(), 8);
  return header_length >= 2 && header_length <= file_size - 8;
}

}  // namespace

Result<ModelFile> open_model_file(const std::string& path, MapMode mode) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) {
    return not_found("model path '", path, "' does not exist; pass a .gguf file or a Hugging Face model directory");
  }
  if (fs::is_directory(status)) return open_safetensors_directory(path, mode);
  if (!fs::is_regular_file(status)) {
    // note: opening a FIFO to read would wait for a writer forever.
    return invalid_argument("model path '", path, "' is ", describe_file_kind(path),
                            "; pass a .gguf file or a Hugging Face model directory");
  }

  const std::string start = read_file_start(path, 16);
  if (start.starts_with("GGUF")) return open_gguf(path, mode);
  const uint64_t file_size = fs::file_size(path, error);
  if (!error && looks_like_safetensors(start, file_size)) {
    return invalid_argument("'", path, "' is a single safetensors file; pass the directory that holds it ",
                            "together with config.json (and any other shards) instead");
  }
  // Anything else, including a GGUF file too broken to show its magic: the GGUF reader's
  // message names the bytes it found.
  return open_gguf(path, mode);
}

}  // namespace so
