#include "offload/disk_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace so {

Result<DiskReader> DiskReader::open(const ModelFile& file) {
  DiskReader reader;
  reader.file_ = &file;
  for (const MappedFile& mapped : file.files) {
    const int fd = ::open(mapped.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return unsupported("the disk tier reads streamed layers from the model's files, but '", mapped.path(),
                         "' cannot be opened (", std::strerror(errno),
                         "); dummy weights have no file: give --host-mem room for every streamed layer");
    }
    reader.fds_.push_back(fd);
  }
  if (reader.fds_.empty()) return unsupported("the model has no file to read streamed layers from");
  return reader;
}

DiskReader::DiskReader(DiskReader&& other) noexcept { *this = std::move(other); }

DiskReader& DiskReader::operator=(DiskReader&& other) noexcept {
  if (this != &other) {
    for (int fd : fds_) ::close(fd);
    file_ = other.file_;
    fds_ = std::move(other.fds_);
    other.fds_.clear();
  }
  return *this;
}

DiskReader::~DiskReader() {
  for (int fd : fds_) ::close(fd);
}

std::vector<SegmentRead> DiskReader::plan(std::span<const std::pair<const uint8_t*, int64_t>> sources,
                                          std::span<const int64_t> slab_offsets) const {
  std::vector<SegmentRead> reads;
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto [data, bytes] = sources[i];
    SegmentRead read{-1, 0, data, bytes, slab_offsets[i]};
    for (size_t f = 0; f < file_->files.size(); ++f) {
      const MappedFile& mapped = file_->files[f];
      if (data >= mapped.data() && data + bytes <= mapped.data() + mapped.size()) {
        read = {int(f), uint64_t(data - mapped.data()), nullptr, bytes, slab_offsets[i]};
        break;
      }
    }
    reads.push_back(read);
  }
  return reads;
}

Status DiskReader::read(std::span<const SegmentRead> reads, uint8_t* slab) const {
  for (const SegmentRead& read : reads) {
    uint8_t* destination = slab + read.slab_offset;
    if (read.file < 0) {
      std::memcpy(destination, read.memory, size_t(read.bytes));
      continue;
    }
    const int fd = fds_[size_t(read.file)];
    int64_t done = 0;
    while (done < read.bytes) {
      const ssize_t got = ::pread(fd, destination + done, size_t(read.bytes - done), off_t(read.offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        return io_error(
            "reading ", read.bytes, " bytes at offset ", read.offset, " of '", file_->files[size_t(read.file)].path(),
            "' failed: ", got < 0 ? std::strerror(errno) : "the file is shorter than its tensor directory says");
      }
      done += got;
    }
    // note: what was read now lives in the staging slot; the page cache need not keep it.
    ::posix_fadvise(fd, off_t(read.offset), off_t(read.bytes), POSIX_FADV_DONTNEED);
  }
  return Status::Ok();
}

}  // namespace so
