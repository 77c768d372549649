// What a path names, checked before any work is done: a run that would fail at its end to
// write its stats, or hang reading a FIFO, or read a directory as an empty file, says so
// at its start instead.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace so {

// "a directory", "a FIFO", "a character device", "a socket", "a block device", "a regular file".
std::string describe_file_kind(const std::string& path);

// A file to read: it exists and is not a directory; regular_only also refuses FIFOs, devices
// and sockets (a model file is mapped; a prompt file may come from a pipe).
Status check_input_file(std::string_view flag, const std::string& path, bool regular_only);

// A file to write: one that may be written, or a new name in a directory that exists.
// read_back: the file is appended to, synced and read back to resume, so it must be a
// regular file (not a pipe or a device such as /dev/stdout); otherwise a pipe or a device
// (/dev/stderr) will do.
Status check_output_file(std::string_view flag, const std::string& path, bool read_back);

// Whether two paths name the same existing file (the same device and inode).
bool same_file(const std::string& a, const std::string& b);

}  // namespace so
