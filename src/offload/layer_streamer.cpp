#include "offload/layer_streamer.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"
#include "base/strings.h"
#include "base/timer.h"

namespace so {

namespace {

// Which segments are resident: as many as `budget` holds (smallest first, so the most
// fit), then placed evenly by Bresenham over the pass order.
std::vector<bool> spread_residents(const std::vector<int64_t>& bytes, int64_t budget) {
  const int n = static_cast<int>(bytes.size());
  std::vector<int64_t> sorted = bytes;
  std::sort(sorted.begin(), sorted.end());
  int count = 0;
  for (int64_t left = budget; count + 1 < n && sorted[count] <= left; ++count) left -= sorted[count];
  // note: segments are near equal in size (head chunks are cut to the largest layer); a
  // picked segment that would overrun the budget is skipped.
  std::vector<bool> resident(size_t(n), false);
  int64_t used = 0;
  for (int i = 0; i < n; ++i) {
    const bool pick = (int64_t(i + 1) * count) / n > (int64_t(i) * count) / n;
    if (pick && used + bytes[i] <= budget) {
      resident[i] = true;
      used += bytes[i];
    }
  }
  return resident;
}

}  // namespace

Result<std::unique_ptr<LayerStreamer>> LayerStreamer::create(const Model& model, Backend& backend,
                                                             const LayerStreamerOptions& options) {
  std::unique_ptr<LayerStreamer> streamer(new LayerStreamer(model, backend));
  LayerStreamer& s = *streamer;
  const ModelConfig& config = model.config;
  s.n_layers_ = options.n_layers < 0 ? config.n_layers : std::min(options.n_layers, config.n_layers);
  if (options.ring_slots < 1) return invalid_argument("ring slots ", options.ring_slots, " must be at least 1");

  int64_t largest = 0;
  for (int layer = 0; layer < s.n_layers_; ++layer) {
    s.layouts_.push_back(layer_slab_layout(model.weights.layers[layer], config));
    s.segment_bytes_.push_back(s.layouts_.back().bytes);
    largest = std::max(largest, s.layouts_.back().bytes);
  }
  // The head in chunks of whole rows that fit a slot (rows are contiguous in the file).
  const TensorView& output = model.weights.output;
  s.rows_per_chunk_ = std::max<int64_t>(1, largest / output.row_bytes());
  for (int64_t row = 0; row < output.shape[0]; row += s.rows_per_chunk_) {
    s.chunk_rows_.push_back(row);
    s.segment_bytes_.push_back(std::min(s.rows_per_chunk_, output.shape[0] - row) * output.row_bytes());
  }
  const int n_segments = s.n_segments();
  const int64_t slot_bytes = *std::max_element(s.segment_bytes_.begin(), s.segment_bytes_.end());
  const int64_t norm_bytes = config.dim * int64_t(sizeof(float));
  int64_t all_bytes = norm_bytes;
  for (int64_t bytes : s.segment_bytes_) all_bytes += bytes;

  // With room for everything, everything is resident. Otherwise residents take what the
  // ring leaves of the budget, spread evenly over the pass.
  std::vector<bool> resident(size_t(n_segments), true);
  if (options.device_budget_bytes < all_bytes) {
    const int64_t ring_bytes = slot_bytes * std::min(options.ring_slots, n_segments) + norm_bytes;
    if (options.device_budget_bytes < ring_bytes) {
      return invalid_argument("a device budget of ", format_bytes(double(options.device_budget_bytes)),
                              " holds fewer than ", options.ring_slots, " streamed layers of ",
                              format_bytes(double(slot_bytes)), " each; give at least ",
                              format_bytes(double(ring_bytes)), " (e.g. --device-mem ", (ring_bytes >> 20) + 1,
                              "M) or fewer ring slots");
    }
    resident = spread_residents(s.segment_bytes_, options.device_budget_bytes - ring_bytes);
  }
  s.device_bytes_ = norm_bytes;
  if (!backend.reads_host_memory()) {
    SO_ASSIGN_OR_RETURN(s.output_norm_, backend.allocate(size_t(norm_bytes), MemoryKind::kDevice));
    backend.copy_to_device(s.output_norm_.data(), model.weights.output_norm, size_t(norm_bytes));
  }
  s.views_.resize(s.n_layers_);
  s.slab_index_.resize(n_segments);
  std::vector<uint8_t> staging;
  for (int segment = 0; segment < n_segments; ++segment) {
    const int64_t bytes = s.segment_bytes_[segment];
    SO_ASSIGN_OR_RETURN(Buffer slab,
                        backend.allocate(size_t(bytes), resident[segment] ? MemoryKind::kDevice : MemoryKind::kPinnedHost));
    // note: packing goes through host memory the backend can copy from.
    void* packed = slab.data();
    if (resident[segment]) {
      staging.resize(size_t(bytes));
      packed = staging.data();
    }
    if (segment < s.n_layers_) {
      pack_layer(model.weights.layers[segment], config, s.layouts_[segment], packed);
    } else {
      std::memcpy(packed, output.row(s.chunk_rows_[segment - s.n_layers_]), size_t(bytes));
    }
    if (resident[segment]) {
      backend.copy_to_device(slab.data(), staging.data(), size_t(bytes));
      if (segment < s.n_layers_) {
        s.views_[segment] = layer_views(model.weights.layers[segment], config, s.layouts_[segment], slab.data());
      }
      s.device_bytes_ += bytes;
      s.slab_index_[segment] = -1 - static_cast<int>(s.resident_slabs_.size());
      s.resident_slabs_.push_back(std::move(slab));
    } else {
      s.slab_index_[segment] = static_cast<int>(s.host_slabs_.size());
      s.streamed_.push_back(segment);
      s.host_slabs_.push_back(std::move(slab));
    }
  }
  const int n_slots = std::min(options.ring_slots, s.n_streamed());
  for (int slot = 0; slot < n_slots; ++slot) {
    SO_ASSIGN_OR_RETURN(Buffer buffer, backend.allocate(size_t(slot_bytes), MemoryKind::kDevice));
    s.slots_.push_back(std::move(buffer));
    s.device_bytes_ += slot_bytes;
  }
  s.slot_free_.resize(size_t(n_slots));
  if (n_slots > 0) {
    s.copy_stream_ = backend.create_stream(StreamRole::kCopy);
    for (int slot = 0; slot < n_slots; ++slot) s.issue_next_load();
  }
  return streamer;
}

LayerStreamer::~LayerStreamer() {
  if (copy_stream_) copy_stream_->synchronize();
}

int64_t LayerStreamer::streamed_bytes_per_pass() const {
  int64_t bytes = 0;
  for (int segment : streamed_) bytes += segment_bytes_[segment];
  return bytes;
}

std::vector<StreamSpan> LayerStreamer::take_copy_spans() {
  return copy_stream_ ? copy_stream_->take_spans() : std::vector<StreamSpan>{};
}

std::vector<StreamSpan> LayerStreamer::take_wait_spans() {
  std::vector<StreamSpan> spans;
  spans.swap(wait_spans_);
  return spans;
}

std::string LayerStreamer::segment_name(int segment) const {
  return segment < n_layers_ ? str_cat("layer ", segment) : str_cat("output chunk ", segment - n_layers_);
}

void LayerStreamer::issue_next_load() {
  const int streamed = static_cast<int>(next_load_ % n_streamed());
  const int segment = streamed_[streamed];
  const int slot = static_cast<int>(next_load_ % int64_t(slots_.size()));
  ++next_load_;
  const int64_t bytes = segment_bytes_[segment];
  if (slot_free_[slot]) copy_stream_->wait(std::move(slot_free_[slot]));
  copy_stream_->copy(slots_[slot].data(), host_slabs_[streamed].data(), size_t(bytes), segment_name(segment));
  loads_.push_back({segment, slot, copy_stream_->record()});
  bytes_copied_ += bytes;
}

const void* LayerStreamer::acquire_segment(int segment) {
  if (resident(segment)) return resident_slabs_[-1 - slab_index_[segment]].data();
  SO_CHECK(!loads_.empty() && loads_.front().segment == segment, "weights must be acquired in order; expected ",
           loads_.empty() ? std::string("none") : segment_name(loads_.front().segment), ", got ", segment_name(segment));
  const Load& load = loads_.front();
  if (!backend_.reads_host_memory()) {
    // note: a device backend's ops queue behind the copy; the host does not wait.
    backend_.wait_compute(*load.ready);
  } else if (!load.ready->done()) {
    const double start = now_seconds();
    load.ready->wait_host();
    const double end = now_seconds();
    copy_wait_seconds_ += end - start;
    wait_spans_.push_back({"wait " + segment_name(segment), start, end, 0});
  }
  return slots_[load.slot].data();
}

void LayerStreamer::release_segment(int segment) {
  if (resident(segment)) return;
  SO_CHECK(!loads_.empty() && loads_.front().segment == segment, "release of ", segment_name(segment), " out of order");
  // note: CPU compute is synchronous, so the slot is free now; on a device backend the next
  // copy into the slot waits for the ops issued so far.
  if (!backend_.reads_host_memory()) slot_free_[loads_.front().slot] = backend_.record_compute();
  loads_.pop_front();
  issue_next_load();
}

const LayerWeights& LayerStreamer::acquire(int layer) {
  const void* slab = acquire_segment(layer);
  if (!resident(layer)) views_[layer] = layer_views(model_.weights.layers[layer], model_.config, layouts_[layer], slab);
  return views_[layer];
}

void LayerStreamer::release(int layer) { release_segment(layer); }

OutputChunk LayerStreamer::acquire_output(int chunk) {
  const TensorView& output = model_.weights.output;
  const int64_t first_row = chunk_rows_[chunk];
  const int64_t rows = std::min(rows_per_chunk_, output.shape[0] - first_row);
  TensorView weight = output;
  weight.shape = Shape{rows, output.shape[1]};
  weight.data = acquire_segment(n_layers_ + chunk);
  return {weight, first_row};
}

void LayerStreamer::release_output(int chunk) { release_segment(n_layers_ + chunk); }

}  // namespace so
