#include "format/layout_checks.h"

#include <algorithm>
#include <limits>

namespace so {
namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

std::string dims_for_message(std::span<const uint64_t> dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i) out += str_cat(i ? ", " : "", dims[i]);
  return out + ")";
}

}  // namespace

Status check_tensor_dim_count(std::string_view tensor_name, uint64_t n_dims) {
  if (n_dims <= static_cast<uint64_t>(kMaxDims)) return Status::Ok();
  return format_error("tensor ", quote_for_message(tensor_name), " has ", n_dims, " dimensions, expected at most ",
                      kMaxDims, "; the file is corrupt or holds a tensor this engine cannot use: ", kRedownloadAdvice);
}

Result<Shape> make_tensor_shape(std::string_view tensor_name, std::span<const uint64_t> dims_outer_to_inner) {
  SO_TRY(check_tensor_dim_count(tensor_name, dims_outer_to_inner.size()));
  Shape shape;
  uint64_t n_elements = 1;
  for (uint64_t dim : dims_outer_to_inner) {
    if (dim < 1) {
      return format_error(
          "tensor ", quote_for_message(tensor_name), " has shape ", dims_for_message(dims_outer_to_inner),
          " (outer to inner), but every dimension must be at least 1; the file is corrupt: ", kRedownloadAdvice);
    }
    std::optional<uint64_t> product = checked_mul(n_elements, dim);
    if (!product || *product > kInt64Max) {
      return format_error(
          "tensor ", quote_for_message(tensor_name), " has shape ", dims_for_message(dims_outer_to_inner),
          " (outer to inner), whose element count does not fit in 63 bits; the file is corrupt: ", kRedownloadAdvice);
    }
    n_elements = *product;
    shape.dims[shape.n_dims++] = static_cast<int64_t>(dim);
  }
  return shape;
}

Result<uint64_t> tensor_data_bytes(std::string_view tensor_name, DType dtype, const Shape& shape) {
  const DTypeInfo& info = dtype_info(dtype);
  const uint64_t row_elements = static_cast<uint64_t>(shape.inner());
  const uint64_t block_elements = static_cast<uint64_t>(info.block_elements);
  if (row_elements % block_elements != 0) {
    return format_error("tensor ", quote_for_message(tensor_name), " of type ", info.name, " has rows of ",
                        row_elements, " elements (shape ", shape.to_string(),
                        "), which is not a multiple of the type's block size ", block_elements,
                        "; the file is corrupt: ", kRedownloadAdvice);
  }
  const uint64_t n_blocks = static_cast<uint64_t>(shape.elements()) / block_elements;
  std::optional<uint64_t> bytes = checked_mul(n_blocks, static_cast<uint64_t>(info.block_bytes));
  if (!bytes || *bytes > kInt64Max) {
    return format_error("tensor ", quote_for_message(tensor_name), " of type ", info.name, " and shape ",
                        shape.to_string(),
                        " would take more than 2^63 bytes; the file is corrupt: ", kRedownloadAdvice);
  }
  return *bytes;
}

Status check_ranges_disjoint(std::vector<TensorByteRange>& ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const TensorByteRange& a, const TensorByteRange& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // note: after sorting by begin, a range can only overlap some earlier one if it overlaps
  // the one whose end reaches furthest; tracking that one catches nested ranges too.
  const TensorByteRange* furthest = nullptr;
  for (const TensorByteRange& range : ranges) {
    if (furthest != nullptr && range.begin < furthest->end) {
      return format_error("tensors ", quote_for_message(furthest->tensor_name), " (bytes ", furthest->begin, " to ",
                          furthest->end, ") and ", quote_for_message(range.tensor_name), " (bytes ", range.begin,
                          " to ", range.end,
                          ") overlap in the data section; each tensor needs its own bytes, so the file is corrupt: ",
                          kRedownloadAdvice);
    }
    if (furthest == nullptr || range.end > furthest->end) furthest = &range;
  }
  return Status::Ok();
}

}  // namespace so
