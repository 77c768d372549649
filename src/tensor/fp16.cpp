#include "tensor/fp16.h"

#include <vector>

namespace so {

const float* fp16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> values(65536);
    for (uint32_t h = 0; h < 65536; ++h) values[h] = fp16_to_fp32(static_cast<uint16_t>(h));
    return values;
  }();
  return table.data();
}

}  // namespace so
