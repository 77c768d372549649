// The tensor/ reference dequantizers against hand-built blocks with known values, and
// embedding (which dequantizes rows) on every ISA.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels_test_util.h"

namespace so::cpu {
namespace {

using testing::make_weight;
using testing::runnable_isas;

std::vector<float> dequantize(DType dtype, const void* blocks, int64_t n) {
  std::vector<float> out(n);
  dequantize_row(dtype, blocks, out.data(), n);
  return out;
}

TEST(Dequantize, Q4_0KnownValues) {
  BlockQ4_0 block;
  block.d = fp32_to_fp16(0.5f);
  for (int j = 0; j < 16; ++j) block.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequantize(DType::kQ4_0, &block, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(y[j + 16], (7 - j) * 0.5f) << j;
  }
}

TEST(Dequantize, Q4_1KnownValues) {
  BlockQ4_1 block;
  block.d = fp32_to_fp16(0.25f);
  block.m = fp32_to_fp16(-1.0f);
  for (int j = 0; j < 16; ++j) block.qs[j] = static_cast<uint8_t>(((j * 3) & 15) | ((j ^ 5) << 4));
  const std::vector<float> y = dequantize(DType::kQ4_1, &block, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], ((j * 3) & 15) * 0.25f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], (j ^ 5) * 0.25f - 1.0f) << j;
  }
}

TEST(Dequantize, Q8_0KnownValues) {
  BlockQ8_0 blocks[2];
  for (int b = 0; b < 2; ++b) {
    blocks[b].d = fp32_to_fp16(b == 0 ? 0.125f : -2.0f);
    for (int j = 0; j < 32; ++j) blocks[b].qs[j] = static_cast<int8_t>(j * 8 - 128 + b);
  }
  const std::vector<float> y = dequantize(DType::kQ8_0, blocks, 64);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(y[j], (j * 8 - 128) * 0.125f) << j;
    EXPECT_EQ(y[32 + j], (j * 8 - 127) * -2.0f) << j;
  }
}

TEST(Dequantize, Q4_KKnownValues) {
  // 8 sub-blocks of 32; scales and mins of 6 bits, the upper ones split across bytes.
  const int scale[8] = {1, 2, 3, 4, 17, 33, 50, 63};
  const int min[8] = {0, 5, 10, 63, 20, 40, 16, 1};
  BlockQ4_K block;
  block.d = fp32_to_fp16(0.5f);
  block.dmin = fp32_to_fp16(0.25f);
  for (int j = 0; j < 4; ++j) {
    block.scales[j] = static_cast<uint8_t>(scale[j] | ((scale[j + 4] >> 4) << 6));
    block.scales[j + 4] = static_cast<uint8_t>(min[j] | ((min[j + 4] >> 4) << 6));
    block.scales[j + 8] = static_cast<uint8_t>((scale[j + 4] & 15) | ((min[j + 4] & 15) << 4));
  }
  // Element e: sub-block e/32; its nibble sits in byte 32*(e/64) + e%32, low for even sub-blocks.
  auto q_of = [](int e) { return (e * 7 + e / 32) & 15; };
  std::memset(block.qs, 0, sizeof block.qs);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    block.qs[32 * (e / 64) + e % 32] |= static_cast<uint8_t>(q_of(e) << (sub % 2 == 0 ? 0 : 4));
  }
  const std::vector<float> y = dequantize(DType::kQ4_K, &block, 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    EXPECT_EQ(y[e], 0.5f * scale[sub] * q_of(e) - 0.25f * min[sub]) << e;
  }
}

TEST(Dequantize, Q6_KKnownValues) {
  // Element e: half h = e/128, i = e%128, group g = i/32, l = i%32. Low 4 bits in
  // ql[64h + l + 32(g%2)] (low nibble for g < 2), high 2 bits at bit 2g of qh[32h + l],
  // scale index 8h + 2g + l/16.
  BlockQ6_K block;
  std::memset(&block, 0, sizeof block);
  block.d = fp32_to_fp16(0.125f);
  for (int s = 0; s < 16; ++s) block.scales[s] = static_cast<int8_t>(s * 9 - 70);
  auto q_of = [](int e) { return (e * 37 + 11) & 63; };
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, i = e % 128, g = i / 32, l = i % 32;
    const int q = q_of(e);
    block.ql[64 * h + l + 32 * (g % 2)] |= static_cast<uint8_t>((q & 15) << (g < 2 ? 0 : 4));
    block.qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * g));
  }
  const std::vector<float> y = dequantize(DType::kQ6_K, &block, 256);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, i = e % 128, g = i / 32, l = i % 32;
    const int scale = block.scales[8 * h + 2 * g + l / 16];
    EXPECT_EQ(y[e], 0.125f * scale * (q_of(e) - 32)) << e;
  }
}

TEST(Dequantize, FloatTypes) {
  const uint16_t halves[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};  // 1, -2, 2^-24, 65504
  const std::vector<float> h = dequantize(DType::kF16, halves, 4);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(h[3], 65504.0f);
  const uint16_t brains[3] = {0x3f80, 0xc0a0, 0x0000};  // 1, -5, 0
  const std::vector<float> b = dequantize(DType::kBF16, brains, 3);
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -5.0f);
  EXPECT_EQ(b[2], 0.0f);
  const float floats[2] = {3.5f, -0.25f};
  const std::vector<float> f = dequantize(DType::kF32, floats, 2);
  EXPECT_EQ(f[0], 3.5f);
  EXPECT_EQ(f[1], -0.25f);
}

TEST(Embedding, RowsMatchDequantizeOnEveryIsaAndThreadCount) {
  for (DType dtype : testing::weight_dtypes()) {
    const int64_t dim = 512, n_vocab = 37;
    testing::TestWeight table = make_weight(dtype, n_vocab, dim, 7);
    const std::vector<int32_t> tokens = {3, 0, 36, 3, 17, 5, 5, 20};
    std::vector<float> expected(tokens.size() * dim);
    for (size_t t = 0; t < tokens.size(); ++t) {
      dequantize_row(dtype, table.view.row(tokens[t]), expected.data() + t * dim, dim);
    }
    for (Isa isa : runnable_isas()) {
      for (int n_threads : {1, 2}) {
        ThreadPool pool(n_threads);
        Kernels kernels(pool, isa);
        std::vector<float> out(tokens.size() * dim);
        kernels.embedding(table.view, tokens, out.data());
        EXPECT_TRUE(testing::bitwise_equal(out.data(), expected.data(), out.size()))
            << dtype_name(dtype) << " " << isa_name(isa) << " threads " << n_threads;
      }
    }
  }
}

}  // namespace
}  // namespace so::cpu
