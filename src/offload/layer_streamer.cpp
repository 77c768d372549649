#include "offload/layer_streamer.h"

#include <algorithm>

#include "base/check.h"
#include "base/strings.h"
#include "base/timer.h"

namespace so {

Result<std::unique_ptr<LayerStreamer>> LayerStreamer::create(const Model& model, Backend& backend,
                                                             const LayerStreamerOptions& options) {
  std::unique_ptr<LayerStreamer> streamer(new LayerStreamer(model));
  const ModelConfig& config = model.config;
  const int n_layers = config.n_layers;
  int64_t largest = 0;
  for (const LayerWeights& layer : model.weights.layers) {
    streamer->layouts_.push_back(layer_slab_layout(layer, config));
    largest = std::max(largest, streamer->layouts_.back().bytes);
  }
  if (options.ring_slots < 1) return invalid_argument("ring slots ", options.ring_slots, " must be at least 1");

  // Resident layers take what the ring leaves of the budget, first layers first.
  const int64_t ring_bytes = largest * std::min(options.ring_slots, n_layers);
  if (options.device_budget_bytes < ring_bytes) {
    return invalid_argument("a device budget of ", format_bytes(double(options.device_budget_bytes)), " holds fewer than ",
                            options.ring_slots, " streamed layers of ", format_bytes(double(largest)),
                            " each; give at least ", format_bytes(double(ring_bytes)), " (e.g. --device-mem ",
                            (ring_bytes >> 20) + 1, "M) or fewer ring slots");
  }
  int64_t left = options.device_budget_bytes - ring_bytes;
  while (streamer->n_resident_ < n_layers && streamer->layouts_[streamer->n_resident_].bytes <= left &&
         // with every layer resident the ring is not needed, but keep the rule simple:
         // a layer becomes resident only if the rest still stream through the ring
         streamer->n_resident_ + 1 < n_layers) {
    left -= streamer->layouts_[streamer->n_resident_].bytes;
    ++streamer->n_resident_;
  }

  streamer->views_.resize(n_layers);
  for (int layer = 0; layer < n_layers; ++layer) {
    const LayerWeights& weights = model.weights.layers[layer];
    const LayerSlabLayout& layout = streamer->layouts_[layer];
    const bool resident = layer < streamer->n_resident_;
    SO_ASSIGN_OR_RETURN(Buffer slab,
                        backend.allocate(size_t(layout.bytes), resident ? MemoryKind::kDevice : MemoryKind::kPinnedHost));
    if (resident) {
      // note: packing goes through host memory the backend can copy from.
      std::vector<uint8_t> staging(size_t(layout.bytes));
      pack_layer(weights, config, layout, staging.data());
      backend.copy_to_device(slab.data(), staging.data(), staging.size());
      streamer->views_[layer] = layer_views(weights, config, layout, slab.data());
      streamer->device_bytes_ += layout.bytes;
      streamer->resident_slabs_.push_back(std::move(slab));
    } else {
      pack_layer(weights, config, layout, slab.data());
      streamer->host_slabs_.push_back(std::move(slab));
    }
  }
  const int n_slots = std::min(options.ring_slots, streamer->n_streamed());
  for (int slot = 0; slot < n_slots; ++slot) {
    SO_ASSIGN_OR_RETURN(Buffer buffer, backend.allocate(size_t(largest), MemoryKind::kDevice));
    streamer->slots_.push_back(std::move(buffer));
    streamer->device_bytes_ += largest;
  }
  if (n_slots > 0) {
    streamer->copy_stream_ = backend.create_stream(StreamRole::kCopy);
    for (int slot = 0; slot < n_slots; ++slot) streamer->issue_next_load();
  }
  return streamer;
}

LayerStreamer::~LayerStreamer() {
  if (copy_stream_) copy_stream_->synchronize();
}

int64_t LayerStreamer::streamed_bytes_per_pass() const {
  int64_t bytes = 0;
  for (size_t layer = n_resident_; layer < layouts_.size(); ++layer) bytes += layouts_[layer].bytes;
  return bytes;
}

void LayerStreamer::issue_next_load() {
  const int streamed = static_cast<int>(next_load_ % n_streamed());
  const int layer = n_resident_ + streamed;
  const int slot = static_cast<int>(next_load_ % int64_t(slots_.size()));
  ++next_load_;
  const int64_t bytes = layouts_[layer].bytes;
  copy_stream_->copy(slots_[slot].data(), host_slabs_[streamed].data(), size_t(bytes), str_cat("layer ", layer));
  loads_.push_back({layer, slot, copy_stream_->record()});
  bytes_copied_ += bytes;
}

const LayerWeights& LayerStreamer::acquire(int layer) {
  if (layer < n_resident_) return views_[layer];
  SO_CHECK(!loads_.empty() && loads_.front().layer == layer, "layers must be acquired in order; expected ",
           loads_.empty() ? -1 : loads_.front().layer, ", got ", layer);
  const Load& load = loads_.front();
  if (!load.ready->done()) {
    Stopwatch watch;
    load.ready->wait_host();
    copy_wait_seconds_ += watch.elapsed_seconds();
  }
  views_[layer] = layer_views(model_.weights.layers[layer], model_.config, layouts_[layer], slots_[load.slot].data());
  return views_[layer];
}

void LayerStreamer::release(int layer) {
  if (layer < n_resident_) return;
  SO_CHECK(!loads_.empty() && loads_.front().layer == layer, "release of layer ", layer, " out of order");
  // note: CPU compute is synchronous, so the slot is free now; a device backend records an
  // event on its compute stream here and the copy stream waits on it.
  loads_.pop_front();
  issue_next_load();
}

}  // namespace so
