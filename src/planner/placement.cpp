#include "planner/placement.h"

#include <algorithm>
#include <numeric>

#include "base/strings.h"

namespace so {
namespace {

// Which items of `bytes` fit `budget`: as many as fit smallest first, then placed evenly
// by Bresenham over the order.
std::vector<bool> spread_evenly(std::span<const int64_t> bytes, int64_t budget) {
  const int n = static_cast<int>(bytes.size());
  std::vector<int64_t> sorted(bytes.begin(), bytes.end());
  std::sort(sorted.begin(), sorted.end());
  int count = 0;
  for (int64_t left = budget; count + 1 < n && sorted[count] <= left; ++count) left -= sorted[count];
  // note: segments are near equal in size (head chunks are cut to the largest layer); a
  // picked segment that would overrun the budget is skipped.
  std::vector<bool> picked(size_t(n), false);
  int64_t used = 0;
  for (int i = 0; i < n; ++i) {
    const bool pick = (int64_t(i + 1) * count) / n > (int64_t(i) * count) / n;
    if (pick && used + bytes[i] <= budget) {
      picked[i] = true;
      used += bytes[i];
    }
  }
  return picked;
}

}  // namespace

PassSegments pass_segments(std::span<const int64_t> layer_bytes, int64_t head_rows, int64_t head_row_bytes,
                           std::span<const int> layer_twins) {
  PassSegments segments;
  segments.bytes.assign(layer_bytes.begin(), layer_bytes.end());
  for (size_t layer = 0; layer < layer_bytes.size(); ++layer) {
    segments.twins.push_back(layer < layer_twins.size() ? layer_twins[layer] : int(layer));
  }
  const int64_t largest = layer_bytes.empty() ? 0 : *std::max_element(layer_bytes.begin(), layer_bytes.end());
  segments.head_chunk_rows = std::max<int64_t>(1, head_row_bytes > 0 ? largest / head_row_bytes : head_rows);
  for (int64_t row = 0; row < head_rows; row += segments.head_chunk_rows) {
    segments.twins.push_back(int(segments.bytes.size()));
    segments.bytes.push_back(std::min(segments.head_chunk_rows, head_rows - row) * head_row_bytes);
  }
  return segments;
}

Result<SegmentPlacement> place_segments(std::span<const int64_t> segment_bytes, int64_t extra_device_bytes,
                                        const PlacementBudgets& budgets, std::span<const int> twins) {
  if (budgets.ring_slots < 1) return invalid_argument("ring slots ", budgets.ring_slots, " must be at least 1");
  const int n = static_cast<int>(segment_bytes.size());
  SegmentPlacement placement;
  placement.slot_bytes = n > 0 ? *std::max_element(segment_bytes.begin(), segment_bytes.end()) : 0;
  const int64_t all_bytes = std::accumulate(segment_bytes.begin(), segment_bytes.end(), extra_device_bytes);
  placement.resident.assign(size_t(n), true);
  if (budgets.device_bytes < all_bytes) {
    const int64_t ring_bytes = placement.slot_bytes * std::min(budgets.ring_slots, n) + extra_device_bytes;
    if (budgets.device_bytes < ring_bytes) {
      return resource_exhausted("a device budget of ", format_bytes(double(budgets.device_bytes)), " holds fewer than ",
                              budgets.ring_slots, " streamed layers of ", format_bytes(double(placement.slot_bytes)),
                              " each; give at least ", format_bytes(double(ring_bytes)), " (e.g. --device-mem ",
                              (ring_bytes >> 20) + 1, "M) or fewer ring slots");
    }
    placement.resident = spread_evenly(segment_bytes, budgets.device_bytes - ring_bytes);
  }
  std::vector<int64_t> streamed;
  std::vector<int> streamed_segment;
  for (int segment = 0; segment < n; ++segment) {
    if (placement.resident[segment]) {
      placement.resident_bytes += segment_bytes[segment];
    } else {
      streamed.push_back(segment_bytes[segment]);
      streamed_segment.push_back(segment);
      placement.streamed_bytes += segment_bytes[segment];
    }
  }
  placement.ring_slots = std::min(budgets.ring_slots, static_cast<int>(streamed.size()));
  placement.device_bytes = placement.resident_bytes + placement.slot_bytes * placement.ring_slots + extra_device_bytes;

  // The host tier: pinned slabs for as many streamed segments as the host budget holds
  // beside the staging slots the disk tier then needs; the rest stay in the file. A twin
  // of an earlier streamed segment shares its slab (and its tier), so only the first of
  // each group is placed.
  const int n_streamed = static_cast<int>(streamed.size());
  placement.host_slab_shared_with.assign(size_t(n_streamed), -1);
  std::vector<int> first_of_twin(size_t(n), -1);  // per twin group: its first streamed position
  std::vector<int> owners;                        // streamed positions with a slab of their own
  std::vector<int64_t> owner_bytes;
  for (int position = 0; position < n_streamed; ++position) {
    const int segment = streamed_segment[size_t(position)];
    const int twin = size_t(segment) < twins.size() ? twins[size_t(segment)] : segment;
    int& first = first_of_twin[size_t(twin)];
    if (first >= 0) {
      placement.host_slab_shared_with[size_t(position)] = first;
      continue;
    }
    first = position;
    owners.push_back(position);
    owner_bytes.push_back(streamed[size_t(position)]);
  }
  const int64_t owned_bytes = std::accumulate(owner_bytes.begin(), owner_bytes.end(), int64_t{0});
  placement.in_host.assign(streamed.size(), true);
  if (budgets.host_bytes > 0 && owned_bytes > budgets.host_bytes) {
    const int staging = std::max(1, budgets.staging_slots);
    const int64_t staging_bytes = placement.slot_bytes * staging;
    if (budgets.host_bytes < staging_bytes) {
      return resource_exhausted("a host budget of ", format_bytes(double(budgets.host_bytes)), " holds fewer than ",
                              staging, " staging slots of ", format_bytes(double(placement.slot_bytes)),
                              " for disk reads; give at least ", format_bytes(double(staging_bytes)),
                              " (e.g. --host-mem ", (staging_bytes >> 20) + 1, "M)");
    }
    const std::vector<bool> owner_in_host = spread_evenly(owner_bytes, budgets.host_bytes - staging_bytes);
    for (size_t i = 0; i < owners.size(); ++i) placement.in_host[size_t(owners[i])] = owner_in_host[i];
    for (int position = 0; position < n_streamed; ++position) {
      const int shared = placement.host_slab_shared_with[size_t(position)];
      if (shared >= 0) placement.in_host[size_t(position)] = placement.in_host[size_t(shared)];
      if (!placement.in_host[size_t(position)]) {
        placement.host_slab_shared_with[size_t(position)] = -1;  // read from the file like the rest
        placement.disk_bytes += streamed[size_t(position)];
      }
    }
    if (placement.disk_bytes > 0) placement.staging_slots = staging;
  }
  int64_t slab_bytes = 0;
  for (const int position : owners) {
    if (placement.in_host[size_t(position)]) slab_bytes += streamed[size_t(position)];
  }
  placement.host_bytes = slab_bytes + placement.slot_bytes * placement.staging_slots;
  return placement;
}

}  // namespace so
