// Helpers shared by the kernels_*_test.cpp files: random weights of every dtype, error
// measures, and the ISAs this CPU can run.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "base/cpu_features.h"
#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace so::cpu::testing {

inline const std::vector<DType>& weight_dtypes() {
  static const std::vector<DType> dtypes = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                                            DType::kQ4_1, DType::kQ5_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                                            DType::kMXFP4, DType::kQ2_K, DType::kQ3_K};
  return dtypes;
}

inline bool cpu_runs(Isa isa) {
  const CpuFeatures& f = cpu_features();
  return isa == Isa::kScalar || (f.avx2 && f.fma && f.f16c);
}

inline std::vector<Isa> runnable_isas() {
  std::vector<Isa> isas = {Isa::kScalar};
  if (cpu_runs(Isa::kAvx2)) isas.push_back(Isa::kAvx2);
  return isas;
}

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(n);
  for (auto& v : values) v = normal(rng);
  return values;
}

// A weight (n_out, n_in) of `dtype` holding valid blocks: quantized random values where the
// engine has a quantizer, random bytes with sane f16 scales for the K-quants.
struct TestWeight {
  std::vector<uint8_t> bytes;
  TensorView view;
};

inline TestWeight make_weight(DType dtype, int64_t n_out, int64_t n_in, uint32_t seed) {
  TestWeight weight;
  const int64_t row_bytes = dtype_row_bytes(dtype, n_in);
  weight.bytes.resize(n_out * row_bytes);
  const std::vector<float> values = random_floats(n_out * n_in, seed, 0.5f);
  std::mt19937 rng(seed + 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  for (int64_t o = 0; o < n_out; ++o) {
    const float* x = values.data() + o * n_in;
    uint8_t* row = weight.bytes.data() + o * row_bytes;
    // K-quants with a scale and a min scale: random bytes, then sane f16 ones.
    auto random_blocks_with_d_and_dmin = [&](auto* blocks) {
      for (int64_t i = 0; i < row_bytes; ++i) row[i] = static_cast<uint8_t>(byte(rng));
      for (int64_t b = 0; b < n_in / kQK_K; ++b) {
        blocks[b].d = fp32_to_fp16(scale(rng));
        blocks[b].dmin = fp32_to_fp16(scale(rng));
      }
    };
    switch (dtype) {
      case DType::kF32:
        std::memcpy(row, x, n_in * 4);
        break;
      case DType::kF16:
        for (int64_t i = 0; i < n_in; ++i) reinterpret_cast<uint16_t*>(row)[i] = fp32_to_fp16(x[i]);
        break;
      case DType::kBF16:
        for (int64_t i = 0; i < n_in; ++i) reinterpret_cast<uint16_t*>(row)[i] = fp32_to_bf16(x[i]);
        break;
      case DType::kQ8_0:
        quantize_row_q8_0(x, row, n_in);
        break;
      case DType::kQ4_0:
        quantize_row_q4_0(x, row, n_in);
        break;
      case DType::kQ4_1:
        quantize_row_q4_1(x, row, n_in);
        break;
      case DType::kQ5_0: {  // random 5-bit values and fifth bits, sane scales
        for (int64_t i = 0; i < row_bytes; ++i) row[i] = static_cast<uint8_t>(byte(rng));
        auto* blocks = reinterpret_cast<BlockQ5_0*>(row);
        for (int64_t b = 0; b < n_in / kQK5_0; ++b) blocks[b].d = fp32_to_fp16(scale(rng));
        break;
      }
      case DType::kMXFP4: {  // random nibbles, exponents 2^-8 .. 2^-4 (and one subnormal-scale block)
        for (int64_t i = 0; i < row_bytes; ++i) row[i] = static_cast<uint8_t>(byte(rng));
        auto* blocks = reinterpret_cast<BlockMXFP4*>(row);
        for (int64_t b = 0; b < n_in / 32; ++b) blocks[b].e = static_cast<uint8_t>(119 + byte(rng) % 5);
        if (o == 0) blocks[0].e = 1;
        break;
      }
      case DType::kQ5_K:
        random_blocks_with_d_and_dmin(reinterpret_cast<BlockQ5_K*>(row));
        break;
      case DType::kQ4_K:
        random_blocks_with_d_and_dmin(reinterpret_cast<BlockQ4_K*>(row));
        break;
      case DType::kQ2_K:
        random_blocks_with_d_and_dmin(reinterpret_cast<BlockQ2_K*>(row));
        break;
      case DType::kQ3_K: {
        for (int64_t i = 0; i < row_bytes; ++i) row[i] = static_cast<uint8_t>(byte(rng));
        auto* blocks = reinterpret_cast<BlockQ3_K*>(row);
        for (int64_t b = 0; b < n_in / kQK_K; ++b) blocks[b].d = fp32_to_fp16(scale(rng) * 0.1f);
        break;
      }
      case DType::kQ6_K: {
        for (int64_t i = 0; i < row_bytes; ++i) row[i] = static_cast<uint8_t>(byte(rng));
        auto* blocks = reinterpret_cast<BlockQ6_K*>(row);
        for (int64_t b = 0; b < n_in / kQK_K; ++b) blocks[b].d = fp32_to_fp16(scale(rng) * 0.1f);
        break;
      }
      default:
        ADD_FAILURE() << "no test weights for " << dtype_name(dtype);
    }
  }
  weight.view.dtype = dtype;
  weight.view.shape = Shape{n_out, n_in};
  weight.view.data = weight.bytes.data();
  return weight;
}

// max |a - b| / max |b|: the normalized error of a against the reference b.
inline double normalized_error(const float* a, const float* b, int64_t n) {
  double max_diff = 0.0, max_ref = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(b[i])));
  }
  return max_ref == 0.0 ? max_diff : max_diff / max_ref;
}

inline bool bitwise_equal(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, n * 4) == 0; }

inline int64_t block_of(DType dtype) {
  const int64_t block = dtype_info(dtype).block_elements;
  return dtype_info(dtype).block_elements == kQK_K ? kQK_K : std::max<int64_t>(block, 32);
}

}  // namespace so::cpu::testing
