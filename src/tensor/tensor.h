// Tensor views: dtype, shape and a pointer. Shapes are listed outer to inner (row-major):
// a weight is (n_out, n_in) and its rows are contiguous along n_in.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "base/check.h"
#include "tensor/dtype.h"

namespace so {

constexpr int kMaxDims = 4;

struct Shape {
  int n_dims = 0;
  std::array<int64_t, kMaxDims> dims{};  // outer ... inner

  Shape() = default;
  Shape(std::initializer_list<int64_t> values) {
    SO_CHECK_LE(static_cast<int>(values.size()), kMaxDims);
    for (int64_t v : values) dims[n_dims++] = v;
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t elements() const {
    int64_t n = 1;
    for (int i = 0; i < n_dims; ++i) n *= dims[i];
    return n;
  }
  int64_t inner() const { return n_dims == 0 ? 1 : dims[n_dims - 1]; }
  int64_t rows() const { return n_dims == 0 ? 1 : elements() / inner(); }
  bool operator==(const Shape& other) const {
    if (n_dims != other.n_dims) return false;
    for (int i = 0; i < n_dims; ++i)
      if (dims[i] != other.dims[i]) return false;
    return true;
  }
  std::string to_string() const;
};

// A non-owning, contiguous view. `data` may point at host memory, a mapped file or
// backend memory; who owns it is the caller's business.
struct TensorView {
  DType dtype = DType::kF32;
  Shape shape;
  const void* data = nullptr;

  int64_t bytes() const { return shape.rows() * dtype_row_bytes(dtype, shape.inner()); }
  int64_t row_bytes() const { return dtype_row_bytes(dtype, shape.inner()); }
  const uint8_t* row(int64_t i) const { return static_cast<const uint8_t*>(data) + i * row_bytes(); }
};

}  // namespace so
