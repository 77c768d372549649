// The host KV tier's attention (ARCHITECTURE.md section 3, step 3): the KV cache lives in
// host memory and host threads run the attention core against it, while the projections
// and the rest of the layer stay on the device. Per layer only the step's q, k and v cross
// to the host and the attention output comes back, each direction on its own copy stream.
// On the CPU backend those streams are throttled by --sim-link-gbps like the weights'
// copies, so the tier costs there what it would beside a GPU.
//
// A row whose whole context is in the step (a prompt's first chunk) needs no cache to
// attend: the device computes its attention in scratch pages, and only its k and v go to
// the host, to be stored. Only the other rows' q crosses and their output comes back, so a
// prefill wave moves 2 kv_dim floats per token and layer instead of 2 (q_dim + kv_dim).
//
// note: a layer's host attention overlaps the copies of the next layers' weights, which the
// layer streamer has already issued on its own stream, and (on a device backend) the
// device's attention for the prompts' first chunks; not the rest of the layer, which needs
// its result.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"

namespace so {

// Positions per device scratch page: small, so that a wave of short prompts takes about its
// tokens' worth of one layer's K and V, not a 256-position page per row.
constexpr int kHostScratchPageTokens = 16;

class HostAttention {
 public:
  explicit HostAttention(Backend& backend);
  HostAttention(const HostAttention&) = delete;
  HostAttention& operator=(const HostAttention&) = delete;

  // q (n_tokens, n_heads * head_dim), k and v (n_tokens, n_kv_heads * head_dim) in device
  // memory: stores k and v at the rows' positions of their host pages, and unless
  // store_only writes out (n_tokens, n_heads * head_dim) in device memory. The device's
  // ops issued after it see out in place. params.sinks is in device memory (rows attending on
  // the device read it), host_sinks the same logits in host memory (for host threads).
  void run(const KvGeometry& geometry, int layer, std::span<const AttentionRow> rows, const AttentionParams& params,
           const float* host_sinks, int64_t n_tokens, const float* q, const float* k, const float* v, float* out,
           bool store_only);

  // Totals since creation.
  int64_t bytes_to_host() const { return bytes_to_host_; }
  int64_t bytes_to_device() const { return bytes_to_device_; }
  double compute_seconds() const { return compute_seconds_; }    // host threads' attention
  double transfer_seconds() const { return transfer_seconds_; }  // waiting for q, k, v and out
  // Copies of both directions and the host threads' work ("cpu attention N") since the last call.
  std::vector<StreamSpan> take_spans();

 private:
  float* staging(int index, int64_t floats);
  // Device scratch pages (one layer each) for `rows`, which attend only to themselves.
  std::vector<AttentionRow> scratch_rows(const KvGeometry& layer_geometry, std::span<const AttentionRow> rows);

  Backend& backend_;
  std::unique_ptr<Stream> to_host_;
  std::unique_ptr<Stream> to_device_;
  // Pinned host staging: q, k, v, out, each grown to the largest step seen.
  Buffer staging_[4];
  std::vector<Buffer> scratch_pages_;     // device memory
  std::vector<void*> scratch_page_ptrs_;  // the rows' page tables, into scratch_pages_
  // Per step: the rows attended on the host and on the device, and the host rows' token runs.
  std::vector<AttentionRow> host_rows_, device_rows_;
  std::vector<std::pair<int64_t, int64_t>> host_runs_;  // (first token, count)
  int64_t bytes_to_host_ = 0;
  int64_t bytes_to_device_ = 0;
  double compute_seconds_ = 0.0;
  double transfer_seconds_ = 0.0;
  std::vector<StreamSpan> compute_spans_;
};

}  // namespace so
