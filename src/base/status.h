// Status and Result<T>: errors that are the caller's or the user's fault travel as values.
// Broken invariants use SO_CHECK (check.h) instead.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "base/check.h"
#include "base/strings.h"

namespace so {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // bad option or request
  kNotFound,         // missing file, tensor or key
  kIo,               // read/write/mmap failure
  kFormat,           // malformed model file or JSON
  kUnsupported,      // valid but not handled (dtype, architecture, template)
  kOutOfRange,       // prompt longer than the context, budget exceeded
  kResourceExhausted,
  kUnavailable,  // the service is shutting down
  kInternal,
};

const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "format error: ..." for logs and CLI output.
  std::string to_string() const;
  // Prefix context ("loading model.gguf: ") while keeping the code.
  Status with_context(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename... Args>
Status make_error(ErrorCode code, const Args&... args) {
  return Status(code, str_cat(args...));
}
template <typename... Args>
Status invalid_argument(const Args&... args) { return make_error(ErrorCode::kInvalidArgument, args...); }
template <typename... Args>
Status not_found(const Args&... args) { return make_error(ErrorCode::kNotFound, args...); }
template <typename... Args>
Status io_error(const Args&... args) { return make_error(ErrorCode::kIo, args...); }
template <typename... Args>
Status format_error(const Args&... args) { return make_error(ErrorCode::kFormat, args...); }
template <typename... Args>
Status unsupported(const Args&... args) { return make_error(ErrorCode::kUnsupported, args...); }
template <typename... Args>
Status out_of_range(const Args&... args) { return make_error(ErrorCode::kOutOfRange, args...); }
template <typename... Args>
Status resource_exhausted(const Args&... args) {
  return make_error(ErrorCode::kResourceExhausted, args...);
}

template <typename... Args>
Status unavailable(const Args&... args) { return make_error(ErrorCode::kUnavailable, args...); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {  // NOLINT
    if (std::get<Status>(state_).ok()) state_ = Status(ErrorCode::kInternal, "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(state_);
  }
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> state_;
};

namespace detail {
inline Status status_of(const Status& s) { return s; }
template <typename T>
Status status_of(const Result<T>& r) { return r.status(); }
}  // namespace detail

}  // namespace so

#define SO_CONCAT_INNER(a, b) a##b
#define SO_CONCAT(a, b) SO_CONCAT_INNER(a, b)

// Return the error of a Status or Result expression from the enclosing function.
#define SO_TRY(expr)                                                     \
  do {                                                                   \
    auto&& so_try_value_ = (expr);                                       \
    if (!so_try_value_.ok()) return ::so::detail::status_of(so_try_value_); \
  } while (0)

// SO_ASSIGN_OR_RETURN(auto x, make_x()): unwrap a Result or return its error.
#define SO_ASSIGN_OR_RETURN(lhs, expr) SO_ASSIGN_OR_RETURN_IMPL(SO_CONCAT(so_result_, __LINE__), lhs, expr)
#define SO_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// Unwrap an ok Status/Result where an error would be a bug.
#define SO_CHECK_OK(expr)                                                                          \
  do {                                                                                             \
    auto&& so_check_ok_ = (expr);                                                                  \
    if (!so_check_ok_.ok()) [[unlikely]]                                                           \
      ::so::detail::check_failed(__FILE__, __LINE__, #expr, ::so::detail::status_of(so_check_ok_).to_string()); \
  } while (0)
