// The placement shared by the planner and the layer streamer (planner/placement.h).
#include <gtest/gtest.h>

#include <numeric>

#include "planner/placement.h"

namespace so {
namespace {

TEST(Placement, SegmentsAreLayersThenHeadChunksNoLargerThanALayer) {
  const std::vector<int64_t> layers(4, 1000);
  const PassSegments segments = pass_segments(layers, 25, 90);  // head: 25 rows of 90 bytes
  EXPECT_EQ(segments.head_chunk_rows, 11);
  EXPECT_EQ(segments.bytes, (std::vector<int64_t>{1000, 1000, 1000, 1000, 990, 990, 270}));
}

TEST(Placement, BudgetsHoldAndResidentsSpreadOverThePass) {
  const std::vector<int64_t> bytes(10, 100);
  Result<SegmentPlacement> placement = place_segments(bytes, 8, {508, 2, 0, 3});
  ASSERT_TRUE(placement.ok()) << placement.status().to_string();
  // 508 - (2 slots + 8) leaves 300: three residents, not adjacent.
  EXPECT_EQ(placement->resident_bytes, 300);
  EXPECT_EQ(placement->streamed_bytes, 700);
  EXPECT_EQ(placement->ring_slots, 2);
  EXPECT_EQ(placement->device_bytes, 300 + 200 + 8);
  EXPECT_EQ(placement->disk_bytes, 0);
  std::vector<int> residents;
  for (int i = 0; i < 10; ++i) {
    if (placement->resident[i]) residents.push_back(i);
  }
  ASSERT_EQ(residents.size(), 3u);
  EXPECT_GT(residents[1] - residents[0], 1);
  EXPECT_GT(residents[2] - residents[1], 1);
}

TEST(Placement, EverythingResidentWhenItFitsAndDiskBeyondTheHostBudget) {
  const std::vector<int64_t> bytes(6, 100);
  Result<SegmentPlacement> all = place_segments(bytes, 8, {608, 2, 0, 3});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->streamed_bytes, 0);
  EXPECT_EQ(all->ring_slots, 0);
  // Nothing resident past the ring; a host budget for 2 slabs beside 3 staging slots.
  Result<SegmentPlacement> tiered = place_segments(bytes, 8, {208, 2, 500, 3});
  ASSERT_TRUE(tiered.ok()) << tiered.status().to_string();
  EXPECT_EQ(tiered->streamed_bytes, 600);
  EXPECT_EQ(tiered->disk_bytes, 400);
  EXPECT_EQ(tiered->staging_slots, 3);
  EXPECT_EQ(tiered->host_bytes, 200 + 300);
}

TEST(Placement, StreamedTwinsShareOneHostSlabAndItsTier) {
  const std::vector<int> layer_twins{0, 1, 0, 1, 4, 5};  // layers 2 and 3 are the bytes of 0 and 1
  PassSegments segments = pass_segments(std::vector<int64_t>(6, 100), 1, 50, layer_twins);
  EXPECT_EQ(segments.twins, (std::vector<int>{0, 1, 0, 1, 4, 5, 6}));  // the head chunk is its own
  segments.bytes.pop_back();  // layers only, from here
  const std::span<const int64_t> layers(segments.bytes.data(), 6);
  // Nothing resident: every layer streams, from four slabs.
  Result<SegmentPlacement> shared = place_segments(layers, 8, {208, 2, 0, 3}, layer_twins);
  ASSERT_TRUE(shared.ok()) << shared.status().to_string();
  EXPECT_EQ(shared->streamed_bytes, 600);
  EXPECT_EQ(shared->host_bytes, 400);
  EXPECT_EQ(shared->host_slab_shared_with, (std::vector<int>{-1, -1, 0, 1, -1, -1}));
  // Room for two of the four slabs beside one staging slot: the rest, and their twins, read from disk.
  Result<SegmentPlacement> tiered = place_segments(layers, 8, {208, 2, 300, 1}, layer_twins);
  ASSERT_TRUE(tiered.ok()) << tiered.status().to_string();
  EXPECT_EQ(tiered->in_host, (std::vector<bool>{false, true, false, true, false, true}));
  EXPECT_EQ(tiered->host_slab_shared_with, (std::vector<int>{-1, -1, -1, 1, -1, -1}));
  EXPECT_EQ(tiered->disk_bytes, 300);
  EXPECT_EQ(tiered->host_bytes, 200 + 100);
  // Without twins the same budgets hold two of six.
  Result<SegmentPlacement> distinct = place_segments(layers, 8, {208, 2, 300, 1});
  ASSERT_TRUE(distinct.ok());
  EXPECT_EQ(distinct->disk_bytes, 400);
}

TEST(Placement, TooSmallBudgetsAreClearErrors) {
  const std::vector<int64_t> bytes(6, 100);
  Result<SegmentPlacement> ring = place_segments(bytes, 8, {150, 2, 0, 3});
  ASSERT_FALSE(ring.ok());
  EXPECT_NE(ring.status().message().find("holds fewer than 2 streamed layers"), std::string::npos);
  EXPECT_NE(ring.status().message().find("--device-mem"), std::string::npos);
  Result<SegmentPlacement> staging = place_segments(bytes, 8, {208, 2, 250, 3});
  ASSERT_FALSE(staging.ok());
  EXPECT_NE(staging.status().message().find("staging slots"), std::string::npos);
}

}  // namespace
}  // namespace so
