#include "base/file_checks.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/strings.h"

namespace so {
namespace {

std::string kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

std::string describe_file_kind(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return std::strerror(errno);
  return kind_of(info.st_mode);
}

Status check_input_file(std::string_view flag, const std::string& path, bool regular_only) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return io_error(flag, " '", path, "' cannot be read: ", std::strerror(errno));
  }
  if (S_ISDIR(info.st_mode) || (regular_only && !S_ISREG(info.st_mode))) {
    return invalid_argument(flag, " '", path, "' is ", kind_of(info.st_mode), "; expected a file",
                            regular_only ? " (a regular file: it is mapped into memory)" : "");
  }
  return Status::Ok();
}

Status check_output_file(std::string_view flag, const std::string& path, bool read_back) {
  if (path.empty()) return invalid_argument(flag, " is empty; expected a file name");
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode) || (read_back && !S_ISREG(info.st_mode))) {
      return invalid_argument(flag, " '", path, "' is ", kind_of(info.st_mode), "; expected ",
                              read_back ? "a regular file (records are appended, synced and read back to resume)"
                                        : "a file",
                              " or a new name");
    }
    if (::access(path.c_str(), W_OK) != 0) {
      return io_error(flag, " '", path, "' cannot be written: ", std::strerror(errno));
    }
    return Status::Ok();
  }
  if (errno != ENOENT) return io_error(flag, " '", path, "': ", std::strerror(errno));
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  if (::stat(parent.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return io_error(flag, " '", path, "' cannot be created: its directory '", parent.string(), "' does not exist");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    return io_error(flag, " '", path, "' cannot be created in '", parent.string(), "': ", std::strerror(errno));
  }
  return Status::Ok();
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat first {}, second {};
  if (::stat(a.c_str(), &first) != 0 || ::stat(b.c_str(), &second) != 0) return false;
  return first.st_dev == second.st_dev && first.st_ino == second.st_ino;
}

}  // namespace so
