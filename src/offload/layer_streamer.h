// The tiered weight store for one model (ARCHITECTURE.md section 3). A pass reads its
// weights as a sequence of segments: each layer, packed into one slab, then the LM head in
// row chunks no larger than a layer. As many segments as fit the device budget are
// resident in device memory, spread evenly over the pass so the copy engine keeps loading
// while compute works on them; the others live in pinned host slabs and stream through a
// ring of device slots, one copy per segment, on a copy stream that runs ahead of compute
// by the ring's depth. Prefetch is cyclic: releasing the last segment of a pass starts the
// copies of the next pass's first streamed segments. The token embedding stays in host
// memory (a pass gathers only its tokens' rows) and is not counted against the budget.
// With a budget that holds every segment nothing streams: that is how a device backend
// keeps a model resident (the draft, or a target that fits).
//
// The disk tier: with a host budget too small for every streamed segment, as many as fit
// get pinned host slabs (spread evenly again) and the rest stay in the model file. A disk
// segment is read (offload/disk_reader.h) into one of a few pinned staging slots on a disk
// stream that runs ahead of the copies by the staging ring's depth, then copied from the
// staging slot to its device slot like any other.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "model/forward.h"
#include "model/model.h"
#include "offload/disk_reader.h"
#include "offload/layer_slab.h"
#include "planner/placement.h"

namespace so {

struct LayerStreamerOptions {
  int64_t device_budget_bytes = 0;  // for weights: resident segments, the ring, the output norm
  int ring_slots = 2;
  int n_layers = -1;  // the model's first n layers and the head (a self-draft); < 0: all
  int64_t host_budget_bytes = 0;  // pinned host slabs and staging slots; 0: no cap
  int staging_slots = 3;          // disk tier: segments read ahead into pinned host memory
  double sim_disk_gbps = 0.0;     // disk tier: throttle reads to this (to study slow disks)
};

class LayerStreamer final : public LayerSource {
 public:
  static Result<std::unique_ptr<LayerStreamer>> create(const Model& model, Backend& backend,
                                                       const LayerStreamerOptions& options);
  ~LayerStreamer() override;

  const LayerWeights& acquire(int layer) override;
  void release(int layer) override;
  int n_output_chunks() const override { return static_cast<int>(chunk_rows_.size()); }
  OutputChunk acquire_output(int chunk) override;
  void release_output(int chunk) override;
  const float* output_norm() const override { return output_norm_ ? output_norm_.as<float>() : nullptr; }

  int n_segments() const { return static_cast<int>(segment_bytes_.size()); }
  int n_resident() const { return n_segments() - n_streamed(); }
  int n_streamed() const { return static_cast<int>(streamed_.size()); }
  int n_on_disk() const;
  bool resident(int segment) const { return slab_index_[segment] < 0; }
  int ring_slots() const { return static_cast<int>(slots_.size()); }
  int64_t device_bytes() const { return device_bytes_; }
  int64_t resident_bytes() const { return placement_.resident_bytes; }
  int64_t streamed_bytes_per_pass() const { return placement_.streamed_bytes; }
  int64_t disk_bytes_per_pass() const { return placement_.disk_bytes; }
  // Totals since creation.
  int64_t bytes_copied() const { return bytes_copied_; }
  int64_t bytes_read_from_disk() const { return bytes_read_; }
  int64_t host_bytes() const { return host_bytes_; }
  double copy_wait_seconds() const { return copy_wait_seconds_; }
  // Finished copies, and compute's waits for them ("wait layer N"), since the last call.
  std::vector<StreamSpan> take_copy_spans();
  std::vector<StreamSpan> take_disk_spans();
  std::vector<StreamSpan> take_wait_spans();

 private:
  LayerStreamer(const Model& model, Backend& backend) : model_(model), backend_(backend) {}
  // The device memory holding segment `segment` now (resident slab or its ring slot).
  const void* acquire_segment(int segment);
  void release_segment(int segment);
  void issue_next_load();
  // Disk reads for upcoming disk loads, as many as the staging slots allow.
  void issue_reads();
  bool on_disk(int64_t load) const { return host_slab_of_[size_t(load % n_streamed())] < 0; }
  std::string segment_name(int segment) const;

  const Model& model_;
  Backend& backend_;
  int n_layers_ = 0;
  std::vector<int64_t> segment_bytes_;
  SegmentPlacement placement_;  // planner/placement.h: the planner's own arithmetic
  // Per segment: its place in streamed_ (streamed) or -1 - its resident slab.
  std::vector<int> slab_index_;
  std::vector<int> streamed_;             // streamed segments in pass order
  std::vector<int> host_slab_of_;         // per streamed segment: its host slab, or -1 (on disk)
  std::vector<std::vector<SegmentRead>> disk_reads_;  // per streamed segment on disk
  std::vector<LayerSlabLayout> layouts_;  // per layer
  std::vector<int64_t> chunk_rows_;       // per output chunk: its first row
  int64_t rows_per_chunk_ = 0;
  std::vector<Buffer> resident_slabs_;    // device
  std::vector<Buffer> host_slabs_;        // pinned host, streamed segments
  std::vector<Buffer> staging_;           // pinned host, disk reads land here
  std::vector<std::shared_ptr<Event>> staging_free_;  // per staging slot: its last copy out
  std::optional<DiskReader> disk_;
  std::unique_ptr<Stream> disk_stream_;
  // A disk read issued for load `load` into staging slot `slot`.
  struct Read {
    int64_t load;
    int slot;
    std::shared_ptr<Event> ready;
  };
  std::deque<Read> reads_;
  int64_t next_read_ = 0;      // the load index the next read looks from
  int64_t reads_issued_ = 0;
  double sim_disk_bytes_per_second_ = 0;
  std::vector<Buffer> slots_;             // device ring
  // Per slot: compute's last read of it (an asynchronous backend's copy waits for it).
  std::vector<std::shared_ptr<Event>> slot_free_;
  Buffer output_norm_;                    // device copy, for backends that can't read host memory
  std::vector<LayerWeights> views_;       // per layer, into its resident slab or current slot
  std::unique_ptr<Stream> copy_stream_;
  // Load k copies streamed segment k % n_streamed into slot k % ring_slots.
  struct Load {
    int segment;
    int slot;
    std::shared_ptr<Event> ready;
  };
  std::deque<Load> loads_;  // issued, not yet released (at most ring_slots)
  int64_t next_load_ = 0;
  int64_t device_bytes_ = 0;
  int64_t bytes_copied_ = 0;
  std::atomic<int64_t> bytes_read_{0};
  int64_t host_bytes_ = 0;
  double copy_wait_seconds_ = 0.0;
  std::vector<StreamSpan> wait_spans_;
};

}  // namespace so
