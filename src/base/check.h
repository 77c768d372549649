// SO_CHECK: invariants and driver errors. Prints file:line and the message, then aborts.
// User mistakes never reach a CHECK; they come back as a Status (status.h).
#pragma once

#include "base/strings.h"

namespace so::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* condition, const std::string& message);
}  // namespace so::detail

#define SO_CHECK(condition, ...)                                                                  \
  do {                                                                                            \
    if (!(condition)) [[unlikely]]                                                                \
      ::so::detail::check_failed(__FILE__, __LINE__, #condition, ::so::str_cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

#define SO_CHECK_OP(a, op, b, ...)                                                                     \
  do {                                                                                                 \
    auto&& so_a_ = (a);                                                                                \
    auto&& so_b_ = (b);                                                                                \
    if (!(so_a_ op so_b_)) [[unlikely]]                                                                \
      ::so::detail::check_failed(__FILE__, __LINE__, #a " " #op " " #b,                                \
                                 ::so::str_cat("expected ", so_a_, " " #op " ", so_b_ __VA_OPT__(, ": ", ) __VA_ARGS__)); \
  } while (0)

#define SO_CHECK_EQ(a, b, ...) SO_CHECK_OP(a, ==, b __VA_OPT__(, ) __VA_ARGS__)
#define SO_CHECK_NE(a, b, ...) SO_CHECK_OP(a, !=, b __VA_OPT__(, ) __VA_ARGS__)
#define SO_CHECK_LT(a, b, ...) SO_CHECK_OP(a, <, b __VA_OPT__(, ) __VA_ARGS__)
#define SO_CHECK_LE(a, b, ...) SO_CHECK_OP(a, <=, b __VA_OPT__(, ) __VA_ARGS__)
#define SO_CHECK_GE(a, b, ...) SO_CHECK_OP(a, >=, b __VA_OPT__(, ) __VA_ARGS__)
#define SO_CHECK_GT(a, b, ...) SO_CHECK_OP(a, >, b __VA_OPT__(, ) __VA_ARGS__)
