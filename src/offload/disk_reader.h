// The disk tier (ARCHITECTURE.md section 3): streamed segments that the host budget does
// not hold stay in the model file and are read, segment by segment, into pinned staging
// slots ahead of their copy to the device. Reads use pread on the model's files, not the
// mapping, and drop the pages they read from the page cache, so the file's bytes do not
// accumulate in RAM past the host budget.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "format/model_file.h"

namespace so {

// One piece of a segment: `bytes` at `offset` of model file `file`, or, for bytes that
// are not in a file (a norm the loader converted), a copy from `memory`.
struct SegmentRead {
  int file = -1;
  uint64_t offset = 0;
  const uint8_t* memory = nullptr;
  int64_t bytes = 0;
  int64_t slab_offset = 0;  // where it lands in the segment's slab
};

class DiskReader {
 public:
  // Opens the model's files; an error when the model has none (dummy weights).
  static Result<DiskReader> open(const ModelFile& file);
  DiskReader(DiskReader&& other) noexcept;
  DiskReader& operator=(DiskReader&& other) noexcept;
  DiskReader(const DiskReader&) = delete;
  DiskReader& operator=(const DiskReader&) = delete;
  ~DiskReader();

  // The reads that fill a slab from (source bytes, size) pieces at slab offsets.
  std::vector<SegmentRead> plan(std::span<const std::pair<const uint8_t*, int64_t>> sources,
                                std::span<const int64_t> slab_offsets) const;
  // Runs them into `slab`; false with errno's text on a failed read.
  Status read(std::span<const SegmentRead> reads, uint8_t* slab) const;

 private:
  DiskReader() = default;
  const ModelFile* file_ = nullptr;
  std::vector<int> fds_;  // per mapped file
};

}  // namespace so
