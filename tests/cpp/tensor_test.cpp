#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace so {
namespace {

TEST(DType, TableMatchesGgufBlockGeometry) {
  EXPECT_EQ(dtype_row_bytes(DType::kQ4_1, 64), 40);
  EXPECT_EQ(dtype_row_bytes(DType::kQ4_K, 512), 288);
  EXPECT_EQ(dtype_row_bytes(DType::kQ6_K, 256), 210);
  EXPECT_EQ(dtype_row_bytes(DType::kBF16, 3), 6);
  EXPECT_EQ(dtype_info_from_ggml(30)->name, "BF16");
  EXPECT_FALSE(dtype_info_from_ggml(4).has_value());  // removed Q4_2
  EXPECT_FALSE(dtype_info_from_ggml(1000).has_value());
  EXPECT_EQ(dtype_from_name("q8_0"), DType::kQ8_0);
}

TEST(Fp16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(fp32_to_fp16(f), h) << "half bits " << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): ties go to even (1).
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: even
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3f808000u)), 0x3f80);  // tie to even
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3f818000u)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
}

TEST(Quants, Q8KKeepsTheLargestMagnitudeExact) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> x(256);
  for (auto& v : x) v = normal(rng);
  x[17] = -9.0f;
  BlockQ8_K block;
  quantize_row_q8_k(x.data(), &block, 256);
  EXPECT_EQ(block.qs[17], -127 * (block.d < 0 ? -1 : 1));
  int sum = 0;
  for (int j = 0; j < 16; ++j) sum += block.qs[16 + j];
  EXPECT_EQ(block.bsums[1], sum);
  for (int j = 0; j < 256; ++j) EXPECT_NEAR(block.qs[j] * block.d, x[j], std::fabs(block.d) * 0.5f + 1e-6f);
}

TEST(Quants, Q4RoundTripWithinHalfAStep) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> uniform(-3, 5);
  std::vector<float> x(64), y(64);
  for (auto& v : x) v = uniform(rng);
  std::vector<BlockQ4_1> q41(2);
  quantize_row_q4_1(x.data(), q41.data(), 64);
  dequantize_row(DType::kQ4_1, q41.data(), y.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(x[i], y[i], fp16_to_fp32(q41[i / 32].d) * 0.5f + 0.01f);
  std::vector<BlockQ4_0> q40(2);
  quantize_row_q4_0(x.data(), q40.data(), 64);
  dequantize_row(DType::kQ4_0, q40.data(), y.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(x[i], y[i], std::fabs(fp16_to_fp32(q40[i / 32].d)) * 0.5f + 0.01f);
}

}  // namespace
}  // namespace so
