#include "base/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace so {

namespace {

// The file's bytes into private anonymous memory, read-only afterwards.
Status copy_into(int fd, const std::string& path, uint8_t* data, size_t size) {
  for (size_t done = 0; done < size;) {
    const ssize_t got = ::pread(fd, data + done, std::min<size_t>(size - done, size_t(1) << 30), off_t(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      return io_error("cannot read '", path, "' into memory at byte ", done, " of ", size, ": ",
                      got < 0 ? std::strerror(errno) : "the file ended early");
    }
    done += size_t(got);
  }
  return Status::Ok();
}

}  // namespace

Result<MappedFile> MappedFile::open(const std::string& path, MapMode mode) {
  // note: O_NONBLOCK, so a FIFO given as a file fails below instead of waiting for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return io_error("cannot open '", path, "': ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int error = errno;
    ::close(fd);
    return io_error("cannot stat '", path, "': ", std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return invalid_argument("'", path, "' is ", S_ISDIR(info.st_mode) ? "a directory" : "not a regular file",
                            "; expected a file");
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(info.st_size);
  if (file.size_ > 0 && mode == MapMode::kCopied) {
    void* address = ::mmap(nullptr, file.size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (address == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      return resource_exhausted("cannot hold '", path, "' (", file.size_, " bytes) in memory: ", std::strerror(error),
                                "; map it instead (--mmap on)");
    }
    file.data_ = static_cast<const uint8_t*>(address);
    Status copied = copy_into(fd, path, static_cast<uint8_t*>(address), file.size_);
    ::close(fd);
    if (!copied.ok()) return copied;  // file's destructor unmaps
    ::mprotect(address, file.size_, PROT_READ);
    return file;
  }
  if (file.size_ > 0) {
    void* address = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      return io_error("cannot map '", path, "' (", file.size_, " bytes): ", std::strerror(error));
    }
    file.data_ = static_cast<const uint8_t*>(address);
  }
  ::close(fd);  // the mapping keeps the file alive
  return file;
}

Result<MappedFile> MappedFile::anonymous(size_t bytes, std::string name) {
  MappedFile file;
  file.path_ = std::move(name);
  file.size_ = bytes;
  file.writable_ = true;
  if (bytes > 0) {
    void* address = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (address == MAP_FAILED) {
      return resource_exhausted("cannot map ", bytes, " bytes of memory for ", file.path_, ": ", std::strerror(errno));
    }
    file.data_ = static_cast<const uint8_t*>(address);
  }
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    writable_ = other.writable_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

void MappedFile::prefetch(size_t offset, size_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t begin = offset / page * page;
  size_t end = std::min(size_, offset + length);
  ::madvise(const_cast<uint8_t*>(data_) + begin, end - begin, MADV_WILLNEED);
}

Result<std::string> read_text_file(const std::string& path) {
  // note: a FIFO or a device named as a config file would block or never end.
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    return invalid_argument("'", path, "' is not a regular file; expected a text file such as config.json");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open '", path, "': ", std::strerror(errno));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return io_error("cannot read '", path, "'");
  return contents.str();
}

}  // namespace so
