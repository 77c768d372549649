// The tiered weight store for one model (ARCHITECTURE.md section 3): the first layers that
// fit the device budget are resident in device memory; the others live packed in pinned
// host slabs and stream through a ring of device slots, one copy per layer, on a copy
// stream that runs ahead of compute by the ring's depth. Prefetch is cyclic: releasing
// the last layer of a pass starts the copies of the next pass's first streamed layers.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "model/forward.h"
#include "model/model.h"
#include "offload/layer_slab.h"

namespace so {

struct LayerStreamerOptions {
  int64_t device_budget_bytes = 0;  // for weights: the ring plus resident layers
  int ring_slots = 2;
};

class LayerStreamer final : public LayerSource {
 public:
  static Result<std::unique_ptr<LayerStreamer>> create(const Model& model, Backend& backend,
                                                       const LayerStreamerOptions& options);
  ~LayerStreamer() override;

  const LayerWeights& acquire(int layer) override;
  void release(int layer) override;

  int n_resident() const { return n_resident_; }
  int n_streamed() const { return static_cast<int>(layouts_.size()) - n_resident_; }
  int ring_slots() const { return static_cast<int>(slots_.size()); }
  int64_t device_bytes() const { return device_bytes_; }
  int64_t streamed_bytes_per_pass() const;
  // Totals since creation.
  int64_t bytes_copied() const { return bytes_copied_; }
  double copy_wait_seconds() const { return copy_wait_seconds_; }

 private:
  explicit LayerStreamer(const Model& model) : model_(model) {}
  void issue_next_load();

  const Model& model_;
  int n_resident_ = 0;
  std::vector<LayerSlabLayout> layouts_;  // per layer
  std::vector<Buffer> resident_slabs_;    // device, layers [0, n_resident)
  std::vector<Buffer> host_slabs_;        // pinned host, streamed layers
  std::vector<Buffer> slots_;             // device ring
  std::vector<LayerWeights> views_;       // per layer, into its resident slab or current slot
  std::unique_ptr<Stream> copy_stream_;
  // Load k copies streamed layer k % n_streamed into slot k % ring_slots.
  struct Load {
    int layer;
    int slot;
    std::shared_ptr<Event> ready;
  };
  std::deque<Load> loads_;  // issued, not yet released (at most ring_slots)
  int64_t next_load_ = 0;
  int64_t device_bytes_ = 0;
  int64_t bytes_copied_ = 0;
  double copy_wait_seconds_ = 0.0;
};

}  // namespace so
