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

void HostAttention::run(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows,
                        const AttentionParams& params, int64_t n_tokens, const float* q, const float* k,
                        const float* v, float* out, bool store_only) {
  const size_t q_bytes = size_t(n_tokens) * params.n_heads * params.head_dim * sizeof(float);
  const size_t kv_bytes = size_t(n_tokens) * params.n_kv_heads * params.head_dim * sizeof(float);
  float* q_host = store_only ? nullptr : staging(kQuery, n_tokens * params.n_heads * params.head_dim);
  float* k_host = staging(kKey, n_tokens * params.n_kv_heads * params.head_dim);
  float* v_host = staging(kValue, n_tokens * params.n_kv_heads * params.head_dim);
  float* out_host = store_only ? nullptr : staging(kOut, n_tokens * params.n_heads * params.head_dim);

  const double start = now_seconds();
  // q, k and v are ready once the device's ops issued so far have run.
  to_host_->wait(backend_.record_compute());
  const std::string suffix = str_cat(" ", layer);
  if (!store_only) to_host_->copy(q_host, q, q_bytes, "q to host" + suffix);
  to_host_->copy(k_host, k, kv_bytes, "k to host" + suffix);
  to_host_->copy(v_host, v, kv_bytes, "v to host" + suffix);
  to_host_->synchronize();
  bytes_to_host_ += int64_t(kv_bytes) * 2 + (store_only ? 0 : int64_t(q_bytes));
  const double arrived = now_seconds();

  backend_.host_kv_store(geometry, layer, rows, k_host, v_host);
  if (!store_only) backend_.host_attention(geometry, layer, rows, params, q_host, out_host);
  const double computed = now_seconds();
  compute_seconds_ += computed - arrived;
  compute_spans_.push_back({"cpu attention" + suffix, arrived, computed, 0});
  if (store_only) {
    transfer_seconds_ += arrived - start;
    return;
  }
  // note: the next layer's attention writes out_host again only after the device has run
  // this layer's ops after it, which wait for this copy, so one staging buffer suffices.
  to_device_->copy(out, out_host, q_bytes, "attention to device" + suffix);
  backend_.wait_compute(*to_device_->record());
  bytes_to_device_ += int64_t(q_bytes);
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
