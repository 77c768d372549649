// Read-only memory map of a whole file (RAII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/status.h"

namespace so {

// How a file's bytes reach memory. kMapped shares the page cache (fast to open, pages come
// and go as memory needs); a file truncated or replaced in place while mapped kills the
// process with SIGBUS when a lost page is read. kCopied reads the file into private memory
// once, which no later change to the file can touch (a server's weights).
enum class MapMode { kMapped, kCopied };

class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path, MapMode mode = MapMode::kMapped);
  // Zero-filled private memory of `bytes`, named `name` for messages; writable through
  // writable_data().
  static Result<MappedFile> anonymous(size_t bytes, std::string name);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  uint8_t* writable_data() const { return writable_ ? const_cast<uint8_t*>(data_) : nullptr; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Hint the kernel to read [offset, offset+length) ahead (MADV_WILLNEED).
  void prefetch(size_t offset, size_t length) const;

 private:
  void reset();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool writable_ = false;
};

// Whole file into a string; for small files such as config.json.
Result<std::string> read_text_file(const std::string& path);

}  // namespace so
