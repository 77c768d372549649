#include "backend/host_attention.h"

#include "base/check.h"
#include "base/strings.h"
#include "base/timer.h"

namespace so {
namespace {
enum Staging { kQuery = 0, kKey, kValue, kOut };
}  // namespace

HostAttention::HostAttention(Backend& backend)
    : backend_(backend),
      to_host_(backend.create_stream(StreamRole::kCopyToHost)),
      to_device_(backend.create_stream(StreamRole::kCopy)) {}

float* HostAttention::staging(int index, int64_t floats) {
  const size_t bytes = size_t(floats) * sizeof(float);
  if (staging_[index].bytes() < bytes) {
    staging_[index] = Buffer();  // the old one goes first: pinned memory is precious
    Result<Buffer> buffer = backend_.allocate(bytes, MemoryKind::kPinnedHost);
    SO_CHECK(buffer.ok(), "host attention staging: ", buffer.status().to_string());
    staging_[index] = std::move(buffer).value();
  }
  return staging_[index].as<float>();
}

std::vector<AttentionRow> HostAttention::scratch_rows(const KvGeometry& layer_geometry,
                                                      std::span<const AttentionRow> rows) {
  size_t pages = 0;
  for (const AttentionRow& row : rows)
    pages += size_t((row.n_tokens + layer_geometry.page_tokens - 1) / layer_geometry.page_tokens);
  const size_t page_bytes = size_t(layer_geometry.page_bytes());
  if (!scratch_pages_.empty() && scratch_pages_.front().bytes() != page_bytes) scratch_pages_.clear();
  while (scratch_pages_.size() < pages) {
    Result<Buffer> page = backend_.allocate(page_bytes, MemoryKind::kDevice);
    SO_CHECK(page.ok(), "host attention scratch: ", page.status().to_string());
    scratch_pages_.push_back(std::move(page).value());
  }
  scratch_page_ptrs_.clear();
  for (size_t i = 0; i < pages; ++i) scratch_page_ptrs_.push_back(scratch_pages_[i].data());
  std::vector<AttentionRow> scratch(rows.begin(), rows.end());
  size_t next = 0;
  for (AttentionRow& row : scratch) {
    const size_t n = size_t((row.n_tokens + layer_geometry.page_tokens - 1) / layer_geometry.page_tokens);
    row.pages = std::span<void* const>(scratch_page_ptrs_.data() + next, n);
    next += n;
  }
  return scratch;
}

void HostAttention::run(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                        const AttentionParams& params, const float* host_sinks, int64_t n_tokens, const float* q,
                        const float* k, const float* v, float* out, bool store_only) {
  const int64_t q_dim = int64_t(params.n_heads) * params.head_dim;
  const int64_t kv_dim = int64_t(params.n_kv_heads) * params.head_dim;
  // Rows that attend only to this step's tokens go to the device; the rest to host threads.
  host_rows_.clear();
  device_rows_.clear();
  host_runs_.clear();
  for (const AttentionRow& row : rows) {
    if (store_only) break;
    if (row.kv_start == 0) {
      device_rows_.push_back(row);
      continue;
    }
    host_rows_.push_back(row);
    if (!host_runs_.empty() && host_runs_.back().first + host_runs_.back().second == row.first_token) {
      host_runs_.back().second += row.n_tokens;
    } else {
      host_runs_.push_back({row.first_token, row.n_tokens});
    }
  }
  float* k_host = staging(kKey, n_tokens * kv_dim);
  float* v_host = staging(kValue, n_tokens * kv_dim);
  float* q_host = host_runs_.empty() ? nullptr : staging(kQuery, n_tokens * q_dim);
  float* out_host = host_runs_.empty() ? nullptr : staging(kOut, n_tokens * q_dim);

  const double start = now_seconds();
  // q, k and v are ready once the device's ops issued so far have run.
  to_host_->wait(backend_.record_compute());
  const std::string suffix = str_cat(" ", layer);
  const size_t kv_bytes = size_t(n_tokens * kv_dim) * sizeof(float);
  to_host_->copy(k_host, k, kv_bytes, "k to host" + suffix);
  to_host_->copy(v_host, v, kv_bytes, "v to host" + suffix);
  int64_t q_bytes = 0;
  for (auto [first, count] : host_runs_) {
    const size_t bytes = size_t(count * q_dim) * sizeof(float);
    to_host_->copy(q_host + first * q_dim, q + first * q_dim, bytes, "q to host" + suffix);
    q_bytes += int64_t(bytes);
  }
  if (!device_rows_.empty()) {
    // note: on a device backend this runs while the host waits for the copies above.
    KvGeometry layer_geometry = geometry;
    layer_geometry.n_layers = 1;
    layer_geometry.page_tokens = kHostScratchPageTokens;
    const std::vector<AttentionRow> scratch = scratch_rows(layer_geometry, device_rows_);
    backend_.kv_store(layer_geometry, 0, scratch, k, v);
    backend_.attention(layer_geometry, 0, scratch, params, q, out);
  }
  to_host_->synchronize();
  bytes_to_host_ += 2 * int64_t(kv_bytes) + q_bytes;
  const double arrived = now_seconds();

  backend_.host_kv_store(geometry, layer, rows, k_host, v_host);
  if (!host_rows_.empty()) {
    AttentionParams host_params = params;
    host_params.sinks = host_sinks;
    backend_.host_attention(geometry, layer, host_rows_, host_params, q_host, out_host);
  }
  const double computed = now_seconds();
  compute_seconds_ += computed - arrived;
  compute_spans_.push_back({"cpu attention" + suffix, arrived, computed, 0});
  if (host_runs_.empty()) {
    transfer_seconds_ += arrived - start;
    return;
  }
  // note: the next layer's attention writes out_host again only after the device has run
  // this layer's ops after it, which wait for this copy, so one staging buffer suffices.
  for (auto [first, count] : host_runs_) {
    const size_t bytes = size_t(count * q_dim) * sizeof(float);
    to_device_->copy(out + first * q_dim, out_host + first * q_dim, bytes, "attention to device" + suffix);
    bytes_to_device_ += int64_t(bytes);
  }
  backend_.wait_compute(*to_device_->record());
  transfer_seconds_ += (arrived - start) + (now_seconds() - computed);
}

std::vector<StreamSpan> HostAttention::take_spans() {
  std::vector<StreamSpan> spans = to_host_->take_spans();
  for (StreamSpan& span : to_device_->take_spans()) spans.push_back(std::move(span));
  for (StreamSpan& span : compute_spans_) spans.push_back(std::move(span));
  compute_spans_.clear();
  return spans;
}

}  // namespace so
