#include "offload/layer_streamer.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "base/check.h"
#include "base/strings.h"
#include "base/timer.h"

namespace so {

Result<std::unique_ptr<LayerStreamer>> LayerStreamer::create(const Model& model, Backend& backend,
                                                             const LayerStreamerOptions& options) {
  std::unique_ptr<LayerStreamer> streamer(new LayerStreamer(model, backend));
  LayerStreamer& s = *streamer;
  const ModelConfig& config = model.config;
  s.n_layers_ = options.n_layers < 0 ? config.n_layers : std::min(options.n_layers, config.n_layers);

  std::vector<int64_t> layer_bytes;
  for (int layer = 0; layer < s.n_layers_; ++layer) {
    s.layouts_.push_back(layer_slab_layout(model.weights.layers[layer], config));
    layer_bytes.push_back(s.layouts_.back().bytes);
  }
  const TensorView& output = model.weights.output;
  const PassSegments segments =
      pass_segments(layer_bytes, output.shape[0], output.row_bytes(), layer_twins(model.weights, config, s.n_layers_));
  s.segment_bytes_ = segments.bytes;
  s.rows_per_chunk_ = segments.head_chunk_rows;
  for (int64_t row = 0; row < output.shape[0]; row += s.rows_per_chunk_) s.chunk_rows_.push_back(row);
  const int n_segments = s.n_segments();
  const int64_t norm_bytes = config.dim * int64_t(sizeof(float));
  PlacementBudgets budgets{options.device_budget_bytes, options.ring_slots, options.host_budget_bytes,
                           options.staging_slots};
  SO_ASSIGN_OR_RETURN(s.placement_, place_segments(s.segment_bytes_, norm_bytes, budgets, segments.twins));
  const SegmentPlacement& placement = s.placement_;
  const std::vector<bool>& resident = placement.resident;
  const int64_t slot_bytes = placement.slot_bytes;
  s.device_bytes_ = norm_bytes;
  if (!backend.reads_host_memory()) {
    SO_ASSIGN_OR_RETURN(s.output_norm_, backend.allocate(size_t(norm_bytes), MemoryKind::kDevice));
    backend.copy_to_device(s.output_norm_.data(), model.weights.output_norm, size_t(norm_bytes));
  }
  s.views_.resize(s.n_layers_);
  s.slab_index_.resize(n_segments);
  const std::vector<bool>& in_host = placement.in_host;
  if (placement.disk_bytes > 0) {
    SO_ASSIGN_OR_RETURN(DiskReader disk, DiskReader::open(model.file));
    s.disk_.emplace(std::move(disk));
  }
  std::vector<uint8_t> staging;
  ThreadPool packers(int(std::clamp(std::thread::hardware_concurrency(), 1u, 16u)));
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
      if (const int shared = placement.host_slab_shared_with[size_t(position)]; shared >= 0) {
        s.host_slab_of_.push_back(s.host_slab_of_[size_t(shared)]);  // a twin: the same bytes, one slab
        s.disk_reads_.emplace_back();
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
      pack_layer(model.weights.layers[segment], config, s.layouts_[segment], packed, &packers);
    } else {
      const CopyJob head{packed, output.row(s.chunk_rows_[segment - s.n_layers_]), size_t(bytes)};
      parallel_copy(packers, {&head, 1});
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
    for (int slot = 0; slot < placement.staging_slots; ++slot) {
      SO_ASSIGN_OR_RETURN(Buffer buffer, backend.allocate(size_t(slot_bytes), MemoryKind::kPinnedHost));
      s.staging_.push_back(std::move(buffer));
      s.host_bytes_ += slot_bytes;
    }
    s.staging_free_.resize(s.staging_.size());
    s.disk_stream_ = backend.create_stream(StreamRole::kDisk);
    s.sim_disk_bytes_per_second_ = options.sim_disk_gbps * 1e9;
  }
  const int n_slots = placement.ring_slots;
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
