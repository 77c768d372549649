// Per-row, position-indexed KV cache in fixed-size pages (backend/ops.h KvGeometry).
// A row's position p lives in page p / page_tokens at slot p % page_tokens, so rolling
// back rejected speculative tokens is a length change, never a copy.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "backend/ops.h"
#include "base/status.h"

namespace so {

// Where the pages live. Device pages are read by the backend's attention; host pages (pinned
// on a device backend, outside the device's memory budget) by host threads
// (backend/host_attention.h).
enum class KvPlacement { kDevice, kHost };
std::string_view kv_placement_name(KvPlacement placement);

class KvCache {
 public:
  // budget_bytes caps the pages this cache may hold (0: no cap).
  KvCache(Backend& backend, const KvGeometry& geometry, int64_t budget_bytes,
          KvPlacement placement = KvPlacement::kDevice);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvGeometry& geometry() const { return geometry_; }
  KvPlacement placement() const { return placement_; }

  int32_t add_row();
  void remove_row(int32_t row);  // its pages go back to the free list
  bool has_row(int32_t row) const;

  int32_t length(int32_t row) const;  // committed positions
  // Makes room for positions [length, length + n_new); fails when the budget is exhausted.
  Status reserve(int32_t row, int32_t n_new);
  // After a forward step wrote n_new positions.
  void advance(int32_t row, int32_t n_new);
  // Keeps positions [0, new_length): speculative rollback. Pages stay with the row.
  void truncate(int32_t row, int32_t new_length);

  std::span<void* const> pages(int32_t row) const;
  // Attention view of a row about to process n_tokens starting at token index first_token.
  AttentionRow attention_row(int32_t row, int32_t first_token, int32_t n_tokens) const;

  // Pages are kept for reuse once allocated, so this is also the peak.
  int64_t bytes_allocated() const { return int64_t(all_pages_.size()) * geometry_.page_bytes(); }
  int64_t bytes_per_token() const { return geometry_.page_bytes() / geometry_.page_tokens; }

 private:
  struct Row {
    bool live = false;
    int32_t length = 0;
    std::vector<void*> pages;
  };
  Result<void*> take_page();

  Backend& backend_;
  KvGeometry geometry_;
  int64_t budget_bytes_;
  KvPlacement placement_;
  std::vector<Row> rows_;
  std::vector<int32_t> free_rows_;
  std::vector<Buffer> all_pages_;
  std::vector<void*> free_pages_;
};

}  // namespace so
