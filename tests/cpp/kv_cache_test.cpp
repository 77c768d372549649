#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "kv/kv_cache.h"

namespace so {
namespace {

KvGeometry small_geometry() {
  KvGeometry geometry;
  geometry.n_layers = 2;
  geometry.n_kv_heads = 2;
  geometry.head_dim = 8;
  geometry.page_tokens = 4;
  return geometry;
}

TEST(KvCache, ReserveAdvanceTruncate) {
  CpuBackend backend({1, 0});
  KvCache kv(backend, small_geometry(), 0);
  const int32_t row = kv.add_row();
  EXPECT_EQ(kv.length(row), 0);
  ASSERT_TRUE(kv.reserve(row, 5).ok());
  EXPECT_EQ(kv.pages(row).size(), 2u);  // 5 positions in pages of 4
  kv.advance(row, 5);
  EXPECT_EQ(kv.length(row), 5);
  const void* first_page = kv.pages(row)[0];
  kv.truncate(row, 2);  // speculative rollback: a length change, pages stay
  EXPECT_EQ(kv.length(row), 2);
  EXPECT_EQ(kv.pages(row)[0], first_page);
  const AttentionRow view = kv.attention_row(row, 7, 3);
  EXPECT_EQ(view.kv_start, 2);
  EXPECT_EQ(view.first_token, 7);
  EXPECT_EQ(view.n_tokens, 3);
}

TEST(KvCache, RemovedRowsRecyclePagesAndIds) {
  CpuBackend backend({1, 0});
  KvCache kv(backend, small_geometry(), 0);
  const int32_t a = kv.add_row();
  ASSERT_TRUE(kv.reserve(a, 8).ok());
  const int64_t allocated = kv.bytes_allocated();
  kv.remove_row(a);
  EXPECT_FALSE(kv.has_row(a));
  const int32_t b = kv.add_row();
  EXPECT_EQ(b, a);
  ASSERT_TRUE(kv.reserve(b, 8).ok());
  EXPECT_EQ(kv.bytes_allocated(), allocated);  // reused, not grown
}

TEST(KvCache, BudgetExhaustionIsAnErrorNotACrash) {
  CpuBackend backend({1, 0});
  const KvGeometry geometry = small_geometry();
  KvCache kv(backend, geometry, 3 * geometry.page_bytes());
  const int32_t row = kv.add_row();
  ASSERT_TRUE(kv.reserve(row, 12).ok());  // exactly three pages
  Status status = kv.reserve(row, 13);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(status.message().find("KV cache budget"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace so
