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
  std::vector<int64_t> streamed_bytes;
  for (int segment = 0; segment < n_segments; ++segment) {
    if (!resident[segment]) streamed_bytes.push_back(s.segment_bytes_[segment]);
  }
  // The host tier: pinned slabs for as many streamed segments as the host budget holds
  // (beside the staging slots the disk tier then needs), spread evenly; the rest on disk.
  const int n_streaming = static_cast<int>(streamed_bytes.size());
  std::vector<bool> in_host(size_t(n_streaming), true);
  int64_t all_streamed = 0;
  for (int64_t bytes : streamed_bytes) all_streamed += bytes;
  if (options.host_budget_bytes > 0 && all_streamed > options.host_budget_bytes) {
    const int64_t staging_bytes = slot_bytes * std::max(1, options.staging_slots);
    if (options.host_budget_bytes < staging_bytes) {
      return invalid_argument("a host budget of ", format_bytes(double(options.host_budget_bytes)),
                              " holds fewer than ", std::max(1, options.staging_slots), " staging slots of ",
                              format_bytes(double(slot_bytes)), " for disk reads; give at least ",
                              format_bytes(double(staging_bytes)), " (e.g. --host-mem ", (staging_bytes >> 20) + 1, "M)");
    }
    in_host = spread_residents(streamed_bytes, options.host_budget_bytes - staging_bytes);
    SO_ASSIGN_OR_RETURN(DiskReader disk, DiskReader::open(model.file));
    s.disk_.emplace(std::move(disk));
  }
  std::vector<uint8_t> staging;
  for (int segment = 0; segment < n_segments; ++segment) {
    const int64_t bytes = s.segment_bytes_[segment];
    if (!resident[segment]) {
      const int position = s.n_streamed();
      s.slab_index_[segment] = position;
      s.streamed_.push_back(segment);
      if (!in_host[size_t(position)]) {
        // On disk: where its bytes are in the file, read when the pass comes to it.
        std::vector<std::pair<const uint8_t*, int64_t>> sources;
        std::vector<int64_t> offsets;
        if (segment < s.n_layers_) {
          sources = layer_sources(model.weights.layers[segment], config);
          offsets = s.layouts_[segment].offsets;
        } else {
          sources = {{static_cast<const uint8_t*>(output.row(s.chunk_rows_[segment - s.n_layers_])), bytes}};
          offsets = {0};
        }
        s.host_slab_of_.push_back(-1);
        s.disk_reads_.push_back(s.disk_->plan(sources, offsets));
        continue;
      }
      s.host_slab_of_.push_back(static_cast<int>(s.host_slabs_.size()));
      s.disk_reads_.emplace_back();
    }
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
      s.host_bytes_ += bytes;
      s.host_slabs_.push_back(std::move(slab));
    }
  }
  if (s.n_on_disk() > 0) {
    for (int slot = 0; slot < std::max(1, options.staging_slots); ++slot) {
      SO_ASSIGN_OR_RETURN(Buffer buffer, backend.allocate(size_t(slot_bytes), MemoryKind::kPinnedHost));
      s.staging_.push_back(std::move(buffer));
      s.host_bytes_ += slot_bytes;
    }
    s.staging_free_.resize(s.staging_.size());
    s.disk_stream_ = backend.create_stream(StreamRole::kDisk);
    s.sim_disk_bytes_per_second_ = options.sim_disk_gbps * 1e9;
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
  if (disk_stream_) disk_stream_->synchronize();
  if (copy_stream_) copy_stream_->synchronize();
}

int LayerStreamer::n_on_disk() const {
  return static_cast<int>(std::count(host_slab_of_.begin(), host_slab_of_.end(), -1));
}

int64_t LayerStreamer::streamed_bytes_per_pass() const {
  int64_t bytes = 0;
  for (int segment : streamed_) bytes += segment_bytes_[segment];
  return bytes;
}

std::vector<StreamSpan> LayerStreamer::take_copy_spans() {
  return copy_stream_ ? copy_stream_->take_spans() : std::vector<StreamSpan>{};
}

std::vector<StreamSpan> LayerStreamer::take_disk_spans() {
  return disk_stream_ ? disk_stream_->take_spans() : std::vector<StreamSpan>{};
}

std::vector<StreamSpan> LayerStreamer::take_wait_spans() {
  std::vector<StreamSpan> spans;
  spans.swap(wait_spans_);
  return spans;
}

std::string LayerStreamer::segment_name(int segment) const {
  return segment < n_layers_ ? str_cat("layer ", segment) : str_cat("output chunk ", segment - n_layers_);
}

void LayerStreamer::issue_reads() {
  if (staging_.empty()) return;
  const int64_t slots = static_cast<int64_t>(staging_.size());
  while (static_cast<int64_t>(reads_.size()) < slots) {
    // note: reads go in load order over the cyclic pass, at most a staging ring ahead.
    while (!on_disk(next_read_)) ++next_read_;
    const int position = static_cast<int>(next_read_ % n_streamed());
    const int slot = static_cast<int>(reads_issued_++ % slots);
    if (staging_free_[slot]) disk_stream_->wait(std::move(staging_free_[slot]));
    uint8_t* destination = staging_[slot].as<uint8_t>();
    const std::vector<SegmentRead>* reads = &disk_reads_[size_t(position)];
    const int64_t bytes = segment_bytes_[streamed_[position]];
    disk_stream_->launch(
        [this, reads, destination, bytes] {
          const double start = now_seconds();
          // A failed read of a file that opened and sized fine is the disk's failure, not the user's.
          SO_CHECK_OK(disk_->read(*reads, destination));
          bytes_read_.fetch_add(bytes, std::memory_order_relaxed);
          if (sim_disk_bytes_per_second_ > 0) sleep_until_seconds(start + double(bytes) / sim_disk_bytes_per_second_);
        },
        "read " + segment_name(streamed_[position]));
    reads_.push_back({next_read_, slot, disk_stream_->record()});
    ++next_read_;
  }
}

void LayerStreamer::issue_next_load() {
  const int64_t load = next_load_++;
  const int streamed = static_cast<int>(load % n_streamed());
  const int segment = streamed_[streamed];
  const int slot = static_cast<int>(load % int64_t(slots_.size()));
  const int64_t bytes = segment_bytes_[segment];
  if (slot_free_[slot]) copy_stream_->wait(std::move(slot_free_[slot]));
  if (on_disk(load)) {
    issue_reads();
    SO_CHECK(!reads_.empty() && reads_.front().load == load, "disk reads out of order at load ", load);
    const Read read = std::move(reads_.front());
    reads_.pop_front();
    copy_stream_->wait(read.ready);
    copy_stream_->copy(slots_[slot].data(), staging_[read.slot].data(), size_t(bytes), segment_name(segment));
    staging_free_[read.slot] = copy_stream_->record();
    issue_reads();
  } else {
    copy_stream_->copy(slots_[slot].data(), host_slabs_[host_slab_of_[streamed]].data(), size_t(bytes),
                       segment_name(segment));
  }
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
