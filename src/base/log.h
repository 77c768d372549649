// Leveled logging to stderr. Level from SPECOFFLOAD_LOG (error|warn|info|debug), default warn.
#pragma once

#include "base/strings.h"

namespace so {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_write(LogLevel level, const std::string& message);

}  // namespace so

#define SO_LOG(level, ...)                                                                  \
  do {                                                                                      \
    if (::so::LogLevel::k##level <= ::so::log_level())                                      \
      ::so::log_write(::so::LogLevel::k##level, ::so::str_cat(__VA_ARGS__));                \
  } while (0)
