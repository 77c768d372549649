// Dequantizes raw GGUF blocks for the Python parity tests (test_kernels_dequant.py).
//
//   dequant_tool <DTYPE> <row_elements> < blocks > floats
//
// Reads rows of <row_elements> elements of DTYPE (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16, BF16,
// F32) from stdin until it ends and writes them as little-endian f32 to stdout, through
// tensor/quants.h's dequantize_row.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/quants.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: dequant_tool <DTYPE> <row_elements> < blocks > floats\n";
    return 2;
  }
  const std::optional<so::DType> dtype = so::dtype_from_name(argv[1]);
  if (!dtype || !so::dtype_info(*dtype).weight_supported) {
    std::cerr << "dequant_tool: expected a weight dtype (" << so::supported_weight_dtypes() << "), got '" << argv[1]
              << "'\n";
    return 2;
  }
  const int64_t n = std::atoll(argv[2]);
  const int64_t block = so::dtype_info(*dtype).block_elements;
  if (n <= 0 || n % block != 0) {
    std::cerr << "dequant_tool: row_elements must be a positive multiple of " << block << ", got " << argv[2] << "\n";
    return 2;
  }
  std::freopen(nullptr, "rb", stdin);
  const std::vector<char> input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const int64_t row_bytes = so::dtype_row_bytes(*dtype, n);
  if (static_cast<int64_t>(input.size()) % row_bytes != 0) {
    std::cerr << "dequant_tool: input of " << input.size() << " bytes is not a whole number of " << row_bytes
              << "-byte rows\n";
    return 2;
  }
  std::vector<float> row(n);
  for (size_t offset = 0; offset < input.size(); offset += row_bytes) {
    so::dequantize_row(*dtype, input.data() + offset, row.data(), n);
    std::fwrite(row.data(), sizeof(float), row.size(), stdout);
  }
  return 0;
}
