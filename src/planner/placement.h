// Which of a pass's weight segments stay in device memory, which stream from pinned host
// slabs and which from the model file (ARCHITECTURE.md section 3). One function, used by the
// planner to predict and by the layer streamer to place, so the placement a plan prints is
// the one that runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"

namespace so {

// A pass reads its weights as segments: each layer packed into one slab, then the LM head
// in chunks of whole rows no larger than the largest layer.
struct PassSegments {
  std::vector<int64_t> bytes;  // per segment, in pass order: the layers, then the head's chunks
  std::vector<int> twins;      // per segment: the first segment with the same bytes (itself when none)
  int64_t head_chunk_rows = 0;
};
// layer_twins: per layer, the first layer whose packed weights are the same bytes (dummy
// weights alias one random pool); empty: every layer its own.
PassSegments pass_segments(std::span<const int64_t> layer_bytes, int64_t head_rows, int64_t head_row_bytes,
                           std::span<const int> layer_twins = {});

struct PlacementBudgets {
  int64_t device_bytes = 0;  // resident segments, the ring and the extra device bytes
  int ring_slots = 2;
  int64_t host_bytes = 0;    // pinned host slabs and staging slots; 0: no cap
  int staging_slots = 3;
};

struct SegmentPlacement {
  std::vector<bool> resident;  // per segment: in device memory for good
  std::vector<bool> in_host;   // per streamed segment in pass order: a pinned host slab, else the file
  // Per streamed segment in pass order: the earlier one whose host slab holds its bytes too
  // (twins share one), or -1 (its own slab, or none on disk).
  std::vector<int> host_slab_shared_with;
  int64_t slot_bytes = 0;      // the largest segment: the size of a ring or staging slot
  int ring_slots = 0;          // device slots streamed segments rotate through (0: nothing streams)
  int staging_slots = 0;       // pinned slots disk reads land in (0: nothing is on disk)
  int64_t resident_bytes = 0;
  int64_t streamed_bytes = 0;  // per pass
  int64_t disk_bytes = 0;      // per pass, of the streamed
  int64_t device_bytes = 0;    // resident + ring + extra
  int64_t host_bytes = 0;      // host slabs + staging slots
};

// With a device budget that holds everything, everything is resident. Otherwise the ring
// comes first and resident segments take what it leaves, as many as fit (smallest first),
// spread evenly over the pass so the copy engine keeps loading while compute works on them;
// likewise host slabs when the host budget is short, beside the staging slots. Streamed twins
// (PassSegments::twins) share one host slab, since a copy out of it moves the same bytes; in
// device memory each keeps its own, as the pass needs. extra_device_bytes (the final norm) is
// on the device either way. Errors say which budget is too small.
Result<SegmentPlacement> place_segments(std::span<const int64_t> segment_bytes, int64_t extra_device_bytes,
                                        const PlacementBudgets& budgets, std::span<const int> twins = {});

}  // namespace so
