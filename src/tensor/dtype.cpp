#include "tensor/dtype.h"

#include <array>

#include "base/check.h"

namespace so {
namespace {

constexpr std::array kTable = {
    DTypeInfo{DType::kF32, "F32", 1, 4, false, true},
    DTypeInfo{DType::kF16, "F16", 1, 2, false, true},
    DTypeInfo{DType::kQ4_0, "Q4_0", 32, 18, true, true},
    DTypeInfo{DType::kQ4_1, "Q4_1", 32, 20, true, true},
    DTypeInfo{DType::kQ5_0, "Q5_0", 32, 22, true, true},
    DTypeInfo{DType::kQ5_1, "Q5_1", 32, 24, true, false},
    DTypeInfo{DType::kQ8_0, "Q8_0", 32, 34, true, true},
    DTypeInfo{DType::kQ8_1, "Q8_1", 32, 36, true, false},
    DTypeInfo{DType::kQ2_K, "Q2_K", 256, 84, true, true},
    DTypeInfo{DType::kQ3_K, "Q3_K", 256, 110, true, true},
    DTypeInfo{DType::kQ4_K, "Q4_K", 256, 144, true, true},
    DTypeInfo{DType::kQ5_K, "Q5_K", 256, 176, true, true},
    DTypeInfo{DType::kQ6_K, "Q6_K", 256, 210, true, true},
    DTypeInfo{DType::kQ8_K, "Q8_K", 256, 292, true, false},
    DTypeInfo{DType::kIQ2_XXS, "IQ2_XXS", 256, 66, true, false},
    DTypeInfo{DType::kIQ2_XS, "IQ2_XS", 256, 74, true, false},
    DTypeInfo{DType::kIQ3_XXS, "IQ3_XXS", 256, 98, true, false},
    DTypeInfo{DType::kIQ1_S, "IQ1_S", 256, 50, true, false},
    DTypeInfo{DType::kIQ4_NL, "IQ4_NL", 32, 18, true, false},
    DTypeInfo{DType::kIQ3_S, "IQ3_S", 256, 110, true, false},
    DTypeInfo{DType::kIQ2_S, "IQ2_S", 256, 82, true, false},
    DTypeInfo{DType::kIQ4_XS, "IQ4_XS", 256, 136, true, false},
    DTypeInfo{DType::kI8, "I8", 1, 1, false, false},
    DTypeInfo{DType::kI16, "I16", 1, 2, false, false},
    DTypeInfo{DType::kI32, "I32", 1, 4, false, false},
    DTypeInfo{DType::kI64, "I64", 1, 8, false, false},
    DTypeInfo{DType::kF64, "F64", 1, 8, false, false},
    DTypeInfo{DType::kIQ1_M, "IQ1_M", 256, 56, true, false},
    DTypeInfo{DType::kBF16, "BF16", 1, 2, false, true},
    DTypeInfo{DType::kTQ1_0, "TQ1_0", 256, 54, true, false},
    DTypeInfo{DType::kTQ2_0, "TQ2_0", 256, 66, true, false},
    DTypeInfo{DType::kMXFP4, "MXFP4", 32, 17, true, true},
};

}  // namespace

std::optional<DTypeInfo> dtype_info_from_ggml(uint32_t ggml_type) {
  for (const auto& info : kTable) {
    if (static_cast<uint32_t>(info.dtype) == ggml_type) return info;
  }
  return std::nullopt;
}

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& info : kTable) {
    if (info.dtype == dtype) return info;
  }
  SO_CHECK(false, "dtype number ", static_cast<uint32_t>(dtype), " is not in the table");
  __builtin_unreachable();
}

std::string_view dtype_name(DType dtype) { return dtype_info(dtype).name; }

std::string_view supported_weight_dtypes() {
  return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, MXFP4, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& info : kTable) {
    if (info.name.size() != name.size()) continue;
    bool equal = true;
    for (size_t i = 0; i < name.size(); ++i) {
      char a = info.name[i], b = name[i];
      if (b >= 'a' && b <= 'z') b = static_cast<char>(b - 'a' + 'A');
      equal &= a == b;
    }
    if (equal) return info.dtype;
  }
  return std::nullopt;
}

}  // namespace so
