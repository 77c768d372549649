// Element types, numbered as GGUF numbers them (ggml_type), with block geometry.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace so {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,  // activations only
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,  // activations only
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;    // as GGUF tools print it: "Q4_K", "BF16"
  int64_t block_elements;   // elements per block (1 for plain types)
  int64_t block_bytes;      // bytes per block
  bool is_quantized;
  bool weight_supported;    // this engine can compute with it as a weight
};

// nullopt for numbers no GGUF writer uses.
std::optional<DTypeInfo> dtype_info_from_ggml(uint32_t ggml_type);
const DTypeInfo& dtype_info(DType dtype);
std::string_view dtype_name(DType dtype);
// "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, MXFP4, Q4_K, Q5_K, Q6_K": for error messages.
std::string_view supported_weight_dtypes();
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t dtype_row_bytes(DType dtype, int64_t n) {
  const DTypeInfo& info = dtype_info(dtype);
  return n / info.block_elements * info.block_bytes;
}

}  // namespace so
