#include "tensor/tensor.h"

namespace so {

std::string Shape::to_string() const {
  std::string out = "(";
  for (int i = 0; i < n_dims; ++i) {
    if (i) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + ")";
}

}  // namespace so
