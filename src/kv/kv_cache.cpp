#include "kv/kv_cache.h"

#include "base/check.h"

namespace so {

std::string_view kv_placement_name(KvPlacement placement) {
  return placement == KvPlacement::kHost ? "host" : "device";
}

KvCache::KvCache(Backend& backend, const KvGeometry& geometry, int64_t budget_bytes, KvPlacement placement)
    : backend_(backend), geometry_(geometry), budget_bytes_(budget_bytes), placement_(placement) {
  SO_CHECK_GT(geometry.page_tokens, 0);
  SO_CHECK_GT(geometry.n_layers, 0);
}

int32_t KvCache::add_row() {
  int32_t row;
  if (!free_rows_.empty()) {
    row = free_rows_.back();
    free_rows_.pop_back();
  } else {
    row = static_cast<int32_t>(rows_.size());
    rows_.emplace_back();
  }
  rows_[row].live = true;
  rows_[row].length = 0;
  return row;
}

void KvCache::remove_row(int32_t row) {
  SO_CHECK(has_row(row), "row ", row);
  Row& r = rows_[row];
  free_pages_.insert(free_pages_.end(), r.pages.begin(), r.pages.end());
  r.pages.clear();
  r.length = 0;
  r.live = false;
  free_rows_.push_back(row);
}

bool KvCache::has_row(int32_t row) const {
  return row >= 0 && row < static_cast<int32_t>(rows_.size()) && rows_[row].live;
}

int32_t KvCache::length(int32_t row) const {
  SO_CHECK(has_row(row), "row ", row);
  return rows_[row].length;
}

Result<void*> KvCache::take_page() {
  if (!free_pages_.empty()) {
    void* page = free_pages_.back();
    free_pages_.pop_back();
    return page;
  }
  const int64_t page_bytes = geometry_.page_bytes();
  if (budget_bytes_ > 0 && bytes_allocated() + page_bytes > budget_bytes_) {
    return resource_exhausted("the KV cache budget of ", format_bytes(double(budget_bytes_)),
                              " is used up (", all_pages_.size(), " pages of ", format_bytes(double(page_bytes)),
                              "); lower the batch size or the context, or raise the KV budget");
  }
  const MemoryKind kind = placement_ == KvPlacement::kHost ? MemoryKind::kPinnedHost : MemoryKind::kDevice;
  SO_ASSIGN_OR_RETURN(Buffer buffer, backend_.allocate(page_bytes, kind));
  void* page = buffer.data();
  all_pages_.push_back(std::move(buffer));
  return page;
}

Status KvCache::reserve(int32_t row, int32_t n_new) {
  SO_CHECK(has_row(row), "row ", row);
  Row& r = rows_[row];
  const int64_t needed_pages = (int64_t(r.length) + n_new + geometry_.page_tokens - 1) / geometry_.page_tokens;
  while (static_cast<int64_t>(r.pages.size()) < needed_pages) {
    SO_ASSIGN_OR_RETURN(void* page, take_page());
    r.pages.push_back(page);
  }
  return Status::Ok();
}

void KvCache::advance(int32_t row, int32_t n_new) {
  SO_CHECK(has_row(row), "row ", row);
  Row& r = rows_[row];
  SO_CHECK_LE(int64_t(r.length) + n_new, int64_t(r.pages.size()) * geometry_.page_tokens, "advance past reserve");
  r.length += n_new;
}

void KvCache::truncate(int32_t row, int32_t new_length) {
  SO_CHECK(has_row(row), "row ", row);
  SO_CHECK(new_length >= 0 && new_length <= rows_[row].length, "truncate to ", new_length, " of ",
           rows_[row].length);
  rows_[row].length = new_length;
}

std::span<void* const> KvCache::pages(int32_t row) const {
  SO_CHECK(has_row(row), "row ", row);
  return rows_[row].pages;
}

AttentionRow KvCache::attention_row(int32_t row, int32_t first_token, int32_t n_tokens) const {
  AttentionRow view;
  view.first_token = first_token;
  view.n_tokens = n_tokens;
  view.kv_start = length(row);
  view.pages = pages(row);
  SO_CHECK_LE(int64_t(view.kv_start) + n_tokens, int64_t(view.pages.size()) * geometry_.page_tokens,
              "reserve before building the attention view");
  return view;
}

}  // namespace so
