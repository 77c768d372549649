// Checks shared by the GGUF and safetensors readers: tensor shapes and byte sizes read from
// a file, and where tensors lie. Every size computed from file contents goes through the
// checked arithmetic here, so a hostile file cannot wrap a 64-bit sum past a bounds check.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tensor/tensor.h"

namespace so {

// What a user should do about a model file that fails a structural check.
inline constexpr std::string_view kRedownloadAdvice = "re-download or re-convert the file";

// a + b, a * b; nullopt when the result does not fit in 64 bits.
inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
  uint64_t sum;
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}
inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
  uint64_t product;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}
// value rounded up to a multiple of alignment (a power of two); nullopt on overflow.
inline std::optional<uint64_t> checked_align_up(uint64_t value, uint64_t alignment) {
  std::optional<uint64_t> padded = checked_add(value, alignment - 1);
  if (!padded) return std::nullopt;
  return *padded & ~(alignment - 1);
}

// Fails when a tensor has more dimensions than a Shape holds.
Status check_tensor_dim_count(std::string_view tensor_name, uint64_t n_dims);

// dims_outer_to_inner as read from the file. Checks the count, that every dim is >= 1 and
// that the element count fits in int64.
Result<Shape> make_tensor_shape(std::string_view tensor_name, std::span<const uint64_t> dims_outer_to_inner);

// Bytes of a tensor; fails when a row (the innermost dim) is not a whole number of the
// dtype's blocks or the size does not fit in int64.
Result<uint64_t> tensor_data_bytes(std::string_view tensor_name, DType dtype, const Shape& shape);

// [begin, end) of one tensor's bytes, relative to the start of the data section.
struct TensorByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;
  std::string_view tensor_name;
};

// Fails when any two ranges overlap. Reorders `ranges` (sorted by begin).
Status check_ranges_disjoint(std::vector<TensorByteRange>& ranges);

}  // namespace so
