// The vectorized activation quantizers (Q8_0, Q8_1, Q8_K into packed rows) against the
// tensor/ reference quantizers, bit for bit: same integers, same f16-rounded scales, same
// sums.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "backend/cpu/activation_layout.h"
#include "backend/cpu/matmul_driver.h"
#include "kernels_test_util.h"

namespace so::cpu {
namespace {

using testing::random_floats;

// Rows that stress the quantizers: random, zero, one spike, opposite-signed ties, tiny
// (subnormal f16 scales) and large values.
std::vector<std::vector<float>> test_rows(int64_t n_in) {
  std::vector<std::vector<float>> rows;
  rows.push_back(random_floats(n_in, static_cast<uint32_t>(n_in)));
  rows.push_back(random_floats(n_in, 7, 1000.0f));
  rows.push_back(random_floats(n_in, 8, 1e-6f));
  rows.push_back(std::vector<float>(n_in, 0.0f));
  std::vector<float> spike(n_in, 0.25f);
  spike[n_in / 3] = -40.0f;
  rows.push_back(spike);
  std::vector<float> ties = random_floats(n_in, 9);
  for (int64_t i = 0; i < n_in; i += 19) ties[i] = (i / 19) % 2 ? 5.0f : -5.0f;
  rows.push_back(ties);
  std::vector<float> halves(n_in);
  for (int64_t i = 0; i < n_in; ++i) halves[i] = (static_cast<float>(i % 64) - 31.5f) / 2.0f;  // exact .5 steps
  rows.push_back(halves);
  return rows;
}

TEST(ActivationQuantize, Avx2MatchesReferenceBitForBit) {
  if (!testing::cpu_runs(Isa::kAvx2)) GTEST_SKIP() << "no AVX2";
  const detail::MatmulKernelSet& kernels = detail::avx2_matmul_kernels(detail::IntegerDot::kAvx2);
  for (DType weight_dtype : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_1, DType::kQ4_K, DType::kQ5_0, DType::kMXFP4}) {
    const bool k_quant = weight_dtype == DType::kQ4_K;
    const std::vector<int64_t> sizes =
        k_quant ? std::vector<int64_t>{256, 512, 768, 1536} : std::vector<int64_t>{32, 64, 96, 288, 576, 1536};
    for (int64_t n_in : sizes) {
      for (const std::vector<float>& x : test_rows(n_in)) {
        const DType activation = weight_dtype == DType::kQ4_1   ? DType::kQ8_1
                                 : weight_dtype == DType::kQ4_K ? DType::kQ8_K
                                                                : DType::kQ8_0;
        std::vector<uint8_t> reference(dtype_row_bytes(activation, n_in));
        if (activation == DType::kQ8_0) quantize_row_q8_0(x.data(), reference.data(), n_in);
        if (activation == DType::kQ8_1) quantize_row_q8_1(x.data(), reference.data(), n_in);
        if (activation == DType::kQ8_K) quantize_row_q8_k(x.data(), reference.data(), n_in);
        AlignedBuffer packed(kernels.activation_row_bytes(weight_dtype, n_in));
        std::memset(packed.data(), 0xAB, packed.size());  // padding must be written, not assumed
        kernels.quantize_row(weight_dtype, x.data(), n_in, packed.data());
        const auto* bytes = packed.as<uint8_t>();
        const std::string where = std::string(dtype_name(activation)) + " n_in " + std::to_string(n_in);
        if (k_quant) {
          const detail::ActivationRow row = detail::q8_k_row(bytes, n_in);
          const auto* blocks = reinterpret_cast<const BlockQ8_K*>(reference.data());
          for (int64_t b = 0; b < n_in / 256; ++b) {
            ASSERT_EQ(std::memcmp(row.qs + b * 256, blocks[b].qs, 256), 0) << where << " block " << b;
            ASSERT_EQ(float_to_bits(row.d[b]), float_to_bits(blocks[b].d)) << where << " block " << b;
            ASSERT_EQ(std::memcmp(row.bsums + b * 16, blocks[b].bsums, 32), 0) << where << " block " << b;
          }
        } else {
          const detail::ActivationRow row = detail::q8_32_row(bytes, n_in);
          const int64_t n_blocks = n_in / 32;
          for (int64_t b = 0; b < n_blocks; ++b) {
            const int8_t* qs;
            uint16_t d;
            if (activation == DType::kQ8_0) {
              const auto& block = reinterpret_cast<const BlockQ8_0*>(reference.data())[b];
              qs = block.qs;
              d = block.d;
              if (weight_dtype == DType::kQ4_0) {
                int sum = 0;
                for (int j = 0; j < 32; ++j) sum += qs[j];
                ASSERT_EQ(static_cast<const int32_t*>(row.s)[b], -sum) << where << " block " << b;
              } else {
                for (int lane = 0; lane < 8; ++lane) {
                  const int quad = qs[4 * lane] + qs[4 * lane + 1] + qs[4 * lane + 2] + qs[4 * lane + 3];
                  ASSERT_EQ(row.lane_offsets[8 * b + lane], -128 * quad) << where << " block " << b;
                }
              }
            } else {
              const auto& block = reinterpret_cast<const BlockQ8_1*>(reference.data())[b];
              qs = block.qs;
              d = block.d;
              ASSERT_EQ(float_to_bits(static_cast<const float*>(row.s)[b]), float_to_bits(fp16_to_fp32(block.s)))
                  << where << " block " << b;
            }
            ASSERT_EQ(std::memcmp(row.qs + b * 32, qs, 32), 0) << where << " block " << b;
            ASSERT_EQ(float_to_bits(row.d[b]), float_to_bits(fp16_to_fp32(d))) << where << " block " << b;
          }
          for (int64_t b = n_blocks; b < detail::q8_32_padded_blocks(n_in); ++b) {
            ASSERT_EQ(row.d[b], 0.0f) << where << " padding";
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace so::cpu
